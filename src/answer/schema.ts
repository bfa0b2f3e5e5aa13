// The answer file: the one definition of what an operator wants. The TypeScript types, the JSON
// Schema (`kvmstrap answer schema`) and the validation all come from this zod schema, and the TUI
// builds the same object. Every object is strict: an unknown key is an error, never ignored
// (the typos that pass silently are what the anchors' users complain about most).
import { z } from "zod";
import {
  type Grammar,
  HOSTNAME,
  INTERFACE_NAME,
  MAC,
  OBJECT_NAME,
  PASSWORD_HASH,
  PCI_ADDRESS,
  SSH_PUBLIC_KEY,
  USER_NAME,
  VM_NAME,
} from "../core/grammar.js";
import { backups } from "./schema-backup.js";
import { cluster } from "./schema-cluster.js";
import { consoles } from "./schema-consoles.js";
import { hardening } from "./schema-hardening.js";
import { metrics } from "./schema-metrics.js";
import { libvirtNetwork, ovsBridge, ovsNic, vlanIdInput } from "./schema-networks.js";

/** A string held to one of the shared grammars (src/core/grammar.ts); its pattern goes to the JSON Schema. */
const grammar = (g: Grammar) =>
  z.string().regex(g.pattern, { message: g.describe, abort: true }).refine(g.test, { message: g.describe });

const hex4 = z.string().regex(/^[0-9a-fA-F]{4}$/, "a 4-digit hex id such as 8086");
const pciAddress = grammar(PCI_ADDRESS);
const mac = grammar(MAC);
const ifname = grammar(INTERFACE_NAME);
const cidr = z
  .string()
  .regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, "an address with prefix length such as 192.0.2.10/24");
const ip = z.string().regex(/^[0-9a-fA-F:.]+$/, "an IP address");
/** Sizes as operators write them: 512G, 2T, 1.5TiB, or a number of bytes. */
export const size = z.union([
  z.number().int().nonnegative(),
  z.string().regex(/^\d+(\.\d+)?\s*([KMGTP]i?B?|B)?$/i, "a size such as 500G, 2T or 1.5TiB"),
]);
const pick = z.enum(["first", "last", "largest", "smallest", "fastest"]);
const level = z.enum(["fail", "warn"]);

/** Picks NICs on machines that differ: every given criterion must hold. */
export const nicMatch = z.strictObject({
  name: z.string().optional().describe("interface name or glob (eno*, enp1s0f?)"),
  mac: mac.optional(),
  driver: z.string().optional(),
  pci: pciAddress.optional(),
  vendor: hex4.optional(),
  minSpeedMbps: z.number().int().positive().optional(),
  uplink: z.literal(true).optional().describe("the NIC carrying the default route (the management NIC)"),
  pick: pick.optional().describe("how to choose when several match; without it, ambiguity is an error"),
});

export const diskMatch = z.strictObject({
  byId: z.string().optional().describe("a /dev/disk/by-id name, with or without the directory"),
  serial: z.string().optional(),
  wwn: z.string().optional().describe("the World Wide Name (wwn-0x..., eui..., naa...), as detect shows it"),
  model: z.string().optional().describe("model or glob"),
  minSize: size.optional(),
  maxSize: size.optional(),
  rotational: z.boolean().optional(),
  largest: z.literal(true).optional(),
  pick: pick.optional(),
});

export const pciMatch = z.strictObject({
  address: pciAddress.optional(),
  id: z
    .string()
    .regex(/^[0-9a-fA-F]{4}:[0-9a-fA-F]{4}$/, "vendor:device such as 10de:1b80")
    .optional(),
  class: z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]{2,6}$/, "a class prefix such as 03 (display) or 0200 (ethernet)")
    .optional(),
  pick: pick.optional(),
});

const addressing = {
  addresses: z.union([z.literal("dhcp"), z.array(cidr).min(1)]).optional(),
  gateway: ip.optional(),
  dns: z
    .strictObject({ servers: z.array(ip).default([]), search: z.array(z.string()).default([]) })
    .optional(),
  mtu: z.number().int().min(576).max(9216).optional(),
  routes: z
    .array(z.strictObject({ to: z.string(), via: ip, metric: z.number().int().nonnegative().optional() }))
    .optional(),
};

export const bridge = z.strictObject({
  name: ifname,
  uplink: nicMatch
    .optional()
    .describe("the NIC enslaved to the bridge; it hands the bridge its MAC and IP configuration"),
  ports: z.array(z.union([nicMatch, z.strictObject({ bond: ifname })])).optional(),
  stp: z.boolean().default(false),
  vlanAware: z.boolean().default(false),
  ...addressing,
});

export const bond = z.strictObject({
  name: ifname,
  interfaces: z.array(nicMatch).min(1),
  mode: z.enum([
    "active-backup",
    "802.3ad",
    "balance-rr",
    "balance-xor",
    "balance-tlb",
    "balance-alb",
    "broadcast",
  ]),
  ...addressing,
});

export const vlan = z.strictObject({
  name: ifname,
  id: z.number().int().min(1).max(4094),
  link: z.union([ifname, nicMatch]).describe("a bridge or bond named in this file, or a NIC match"),
  ...addressing,
});

export const user = z
  .strictObject({
    name: grammar(USER_NAME),
    passwordHash: grammar(PASSWORD_HASH).optional(),
    password: z
      .never({ error: "plaintext passwords are refused: give passwordHash (mkpasswd -m sha-512)" })
      .optional(),
    sshKeys: z.array(grammar(SSH_PUBLIC_KEY)).default([]),
    sudo: z.boolean().default(false),
    groups: z.array(z.string()).default([]),
  })
  .describe("a login on the host");

export const pool = z.strictObject({
  name: grammar(OBJECT_NAME),
  type: z.enum(["dir", "lvm-thin", "zfs"]),
  path: z.string().startsWith("/").optional().describe("dir pools: the directory"),
  disks: z.array(diskMatch).optional().describe("lvm-thin and zfs pools: the disks to use"),
  wipe: z
    .boolean()
    .default(false)
    .describe("erase the disks first; a wipe needs every disk named by byId or serial"),
  autostart: z.boolean().default(true),
});

/** Installing the hypervisor onto a disk from the appliance (kvmstrap install). */
export const install = z
  .strictObject({
    disk: diskMatch.describe(
      "the one target disk, named by byId, serial or wwn (the install erases it); never the boot medium",
    ),
    wipe: z
      .boolean()
      .default(false)
      .describe("erase the disk even though it holds partitions, filesystems or RAID/LVM/ZFS members"),
    filesystem: z.enum(["ext4"]).default("ext4").describe("the root filesystem"),
    firmware: z
      .enum(["auto", "bios", "uefi", "both"])
      .default("auto")
      .describe("boot loaders to install; auto installs both (GPT with a BIOS boot partition and an ESP)"),
    secureBoot: z
      .boolean()
      .default(true)
      .describe("UEFI boots through Debian's signed shim (works with Secure Boot on or off)"),
    espMiB: z.number().int().min(64).max(4096).default(512).describe("size of the EFI system partition"),
    source: z
      .string()
      .startsWith("/")
      .optional()
      .describe(
        "the root to copy: a directory or a .squashfs file; default the live root (/run/live/rootfs/filesystem.squashfs)",
      ),
  })
  .describe("install the hypervisor (Debian 12, qemu, libvirt, kvmstrap) onto a disk: kvmstrap install");

/** A VM name: also its directory name and, by default, the guest's host name (VM_NAME in src/vm). */
const vmName = grammar(VM_NAME);
const hostname = grammar(HOSTNAME);

/** One VM NIC: a libvirt network, a host bridge, a VF of an SR-IOV PF, or macvtap on a host NIC. */
export const vmNic = z.union([
  z.strictObject({
    network: grammar(OBJECT_NAME).describe("a libvirt network name"),
    mac: mac.optional(),
  }),
  z.strictObject({
    bridge: ifname.describe("a bridge in network.bridges or one that exists on the host"),
    vlan: vlanIdInput.optional().describe("a VLAN-aware bridge: the VM's port is untagged on this VLAN"),
    mac: mac.optional(),
  }),
  ovsNic,
  z.strictObject({
    sriov: nicMatch.describe(
      "the PF (it needs an entry in sriov:): the VM gets a VF from the PF's libvirt hostdev network",
    ),
    mac: mac.optional(),
  }),
  z.strictObject({
    macvtap: nicMatch.describe("the host NIC the macvtap device sits on"),
    mode: z.enum(["bridge", "vepa", "private", "passthrough"]).default("bridge"),
    mac: mac.optional(),
  }),
]);

export const vmEntry = z
  .strictObject({
    name: vmName,
    image: z
      .string()
      .regex(
        /^(\/.+|[A-Za-z0-9][A-Za-z0-9._-]*)$/,
        "a cached image name (kvmstrap image list) or an absolute path to a base image",
      ),
    vcpus: z.number().int().min(1).max(512),
    memoryMiB: z.number().int().min(64),
    diskGiB: z.number().positive().describe("the overlay's size; never smaller than the image"),
    template: z
      .string()
      .min(1)
      .optional()
      .describe(
        "a directory of cloud-init templates (user-data.yaml, meta-data.yaml, network-config.yaml), " +
          "absolute or relative to the answer file; default templates/cloud-init",
      ),
    user: user
      .pick({ name: true, sshKeys: true, passwordHash: true, password: true, sudo: true })
      .describe("the login cloud-init creates in the guest"),
    hostname: hostname.optional().describe("the guest's host name (default: the VM name)"),
    nics: z
      .array(vmNic)
      .min(1)
      .default([{ network: "default" }]),
    passthrough: z.array(pciMatch).optional().describe("PCI devices handed to this VM (vfio-pci)"),
    uefi: z.boolean().optional().describe("boot with OVMF instead of SeaBIOS"),
    hugepages: z.boolean().optional(),
    pin: z
      .boolean()
      .optional()
      .describe("pin vCPUs and memory to the NUMA node nearest its passthrough devices or VFs"),
    packages: z.array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9.+:~_=-]*$/, "a package name")).optional(),
    runcmd: z.array(z.union([z.string().min(1), z.array(z.string()).min(1)])).optional(),
    store: z
      .strictObject({
        name: grammar(OBJECT_NAME).describe("a store of cluster.storage"),
        volume: z
          .string()
          .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/, "a volume name such as unit:0:0:1 or web-1.raw")
          .describe("an iSCSI pool's volume (a LUN, unit:0:0:N), a file on the NFS export, or an RBD image"),
      })
      .optional()
      .describe(
        "the VM's disk on shared storage, used as it is (raw, no overlay): the VM migrates without copying it",
      ),
    member: hostname
      .optional()
      .describe(
        "in a cluster answer: the member that deploys and runs this VM (the others leave it alone); an HA VM has none: pacemaker places it",
      ),
  })
  .describe("a VM deployed from a cloud-init template (kvmstrap vm deploy --answer)");

export const answerSchema = z.strictObject({
  version: z.literal(1),
  host: z
    .strictObject({
      hostname: hostname.optional(),
      timezone: z.string().optional(),
      users: z.array(user).default([]),
    })
    .optional(),
  kvm: z
    .strictObject({
      modules: z
        .array(z.enum(["kvm", "kvm_intel", "kvm_amd", "vhost_net", "vfio", "vfio_pci", "vfio_iommu_type1"]))
        .optional(),
      nested: z.boolean().optional(),
      hugepages: z
        .strictObject({
          pages2M: z.number().int().nonnegative().optional(),
          pages1G: z.number().int().nonnegative().optional(),
        })
        .optional(),
      ksm: z.boolean().optional(),
    })
    .optional(),
  iommu: z
    .strictObject({
      enabled: z.boolean(),
      passthroughMode: z
        .boolean()
        .default(true)
        .describe("iommu=pt: DMA remapping only for assigned devices"),
    })
    .optional(),
  network: z
    .strictObject({
      stack: z.enum(["auto", "netplan", "ifupdown2", "networkd", "networkmanager"]).default("auto"),
      confirmTimeoutSeconds: z.number().int().min(10).max(3600).default(120),
      libvirtNat: z
        .strictObject({
          name: grammar(OBJECT_NAME).default("default"),
          bridge: ifname.default("virbr0"),
          subnet: cidr.default("192.168.122.1/24"),
          dhcpRange: z.tuple([ip, ip]).optional(),
        })
        .optional()
        .describe("a libvirt NAT network for guests (libvirt's usual 'default' on virbr0)"),
      bridges: z.array(bridge).default([]),
      bonds: z.array(bond).default([]),
      vlans: z.array(vlan).default([]),
      // Optional with no default, unlike the lists above: a default would change the digest of every
      // answer with a network section written before these existed, and the install marker and
      // verify compare that digest (the same answer must not look like a new one after an upgrade).
      libvirt: z.array(libvirtNetwork).optional().describe("libvirt NAT and isolated networks"),
      ovs: z.array(ovsBridge).optional().describe("Open vSwitch bridges"),
    })
    .optional(),
  sriov: z
    .array(
      z.strictObject({
        pf: nicMatch,
        numVfs: z.number().int().min(0).max(256),
        vfs: z
          .array(
            z.strictObject({
              index: z.number().int().nonnegative(),
              mac: mac.optional(),
              vlan: z.number().int().min(0).max(4094).optional(),
              trust: z.boolean().optional(),
              spoofchk: z.boolean().optional(),
            }),
          )
          .default([]),
        hostdevNetwork: grammar(OBJECT_NAME)
          .optional()
          .describe("name of the libvirt hostdev network for this PF's VFs"),
      }),
    )
    .default([]),
  passthrough: z.array(z.strictObject({ device: pciMatch, note: z.string().optional() })).default([]),
  storage: z.strictObject({ pools: z.array(pool).default([]) }).optional(),
  install: install.optional(),
  vms: z.array(vmEntry).default([]).describe("VMs deployed by kvmstrap vm deploy --answer"),
  consoles: consoles.optional(),
  hardening: hardening.optional(),
  backups: backups.optional(),
  metrics: metrics.optional(),
  cluster: cluster.optional(),
  requires: z
    .strictObject({
      checks: z
        .record(z.string().regex(/^[a-z]+\.[a-z-]+$/, "a check id such as cpu.virt"), level)
        .default({}),
      minNics: z
        .strictObject({
          count: z.number().int().positive(),
          minSpeedMbps: z.number().int().positive().optional(),
          level,
        })
        .optional(),
      minMemoryGiB: z.strictObject({ value: z.number().positive(), level }).optional(),
      minVfs: z.strictObject({ count: z.number().int().positive(), level }).optional(),
    })
    .optional(),
  report: z
    .strictObject({
      webhook: z.url({ protocol: /^https?$/ }).optional(),
      headers: z.record(z.string(), z.string()).default({}),
      secretHeaders: z
        .array(z.string())
        .default(["authorization"])
        .describe("header names whose values are redacted in logs"),
    })
    .optional(),
});

export type Answer = z.infer<typeof answerSchema>;
export type AnswerInput = z.input<typeof answerSchema>;
export type NicMatch = z.infer<typeof nicMatch>;
export type DiskMatch = z.infer<typeof diskMatch>;
export type PciMatch = z.infer<typeof pciMatch>;
export type Bridge = z.infer<typeof bridge>;
export type Bond = z.infer<typeof bond>;
export type Vlan = z.infer<typeof vlan>;
export type Pool = z.infer<typeof pool>;
export type Install = z.infer<typeof install>;
export type VmEntry = z.infer<typeof vmEntry>;
export type VmNicEntry = z.infer<typeof vmNic>;

/** The JSON Schema editors use (yaml-language-server, VS Code). */
export function answerJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(answerSchema, { io: "input", unrepresentable: "any" });
  return dropNonStandardFormats(schema) as Record<string, unknown>;
}

// zod names some string checks as formats that JSON Schema does not define ("starts_with"); the
// pattern it emits beside them already says the same, and editors and validators warn on unknown
// formats, so only the standard ones are kept.
const STANDARD_FORMATS = new Set([
  "date-time",
  "date",
  "time",
  "duration",
  "email",
  "hostname",
  "ipv4",
  "ipv6",
  "uri",
  "uri-reference",
  "uuid",
  "regex",
]);
function dropNonStandardFormats(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(dropNonStandardFormats);
  if (typeof node !== "object" || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => k !== "format" || (typeof v === "string" && STANDARD_FORMATS.has(v)))
      .map(([k, v]) => [k, dropNonStandardFormats(v)]),
  );
}
