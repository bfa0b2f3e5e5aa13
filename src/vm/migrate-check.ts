// What a live migration needs from its target, checked before anything starts: one function over
// facts gathered elsewhere (the VM's live domain XML, the target's host report, what the target's
// libvirtd says over TLS), returning every reason the target cannot take the VM. An empty list
// means go; libvirt still has the last word during the migration itself.
//
// - CPU: a custom (or host-model, expanded in the live XML) model must be usable on the target's
//   hypervisor (its domain capabilities); host-passthrough (and maximum) hands the guest the host's
//   own CPU, so it needs the same vendor (libvirt's and the report's), the same host CPU model and
//   every feature the source's host CPU has.
// - Passthrough: libvirt cannot live-migrate a VM with a host device (PCI, USB, SCSI, mediated) or
//   a NIC of type hostdev (an SR-IOV VF); the reason also says whether the target has that PCI
//   device at all.
// - NICs: a bridge NIC's bridge must exist on the target (a Linux bridge; any interface of that
//   name for Open vSwitch, whose bridge is an internal port), a VLAN on a Linux bridge needs bridge
//   VLAN filtering there, a macvtap (direct) NIC's device must exist there, a libvirt network must
//   be active on the target.
// - Hugepages: as many free pages of each size the VM asks for on the target as its memory takes.
import { attribute, child, children, parseXmlTree, textOf, type XmlNode } from "../core/xml-tree.js";
import type { HostReport } from "../detect/types.js";

/** The host CPU as `virsh capabilities` describes it (host-passthrough compares them). */
export interface HostCpu {
  vendor: string | null;
  model: string | null;
  /** Features beyond the model's own, in libvirt's names. */
  features: string[];
}

/** What the target's libvirtd reported over its TLS connection. */
export interface TargetLibvirtFacts {
  hostname: string;
  hostCpu: HostCpu | null;
  /** Custom CPU models the target's hypervisor can run for this VM's virt type, usable ones only. */
  usableCpuModels: string[];
  /** Active libvirt networks. */
  activeNetworks: string[];
  /** Active storage pools (a volume disk's pool must be one); absent: not asked, not checked. */
  activePools?: string[];
}

/**
 * The parts of the target's host report (src/detect/types.ts) the check reads; a whole HostReport is
 * one (asserted below), and src/app/vm-migrate.ts checks these fields of a report file.
 */
export interface MigrationTargetReport {
  cpu: { vendor: string | null; model: string | null; flags: string[] };
  pci: { address: string }[];
  nics: { name: string | null; kind: string | null }[];
  memory: { hugepageSizeKiB: number | null; hugepages: Record<string, { free: number }> };
  vswitch?: { bridgeVlanFiltering: boolean | null } | undefined;
}
const _aHostReportIsOne = (r: HostReport): MigrationTargetReport => r;
void _aHostReportIsOne;

export interface MigrationFacts {
  vm: string;
  domainXml: string;
  sourceHostname: string;
  sourceHostCpu: HostCpu | null;
  target: TargetLibvirtFacts;
  targetReport: MigrationTargetReport;
}

type Node = XmlNode;
const all = children;
const one = child;
const attr = (n: Node | undefined, key: string): string | undefined => attribute(n, key) ?? undefined;
const text = (n: Node | undefined): string | undefined => textOf(n) ?? undefined;

const KIB = { b: 1 / 1024, bytes: 1 / 1024, kib: 1, k: 1, mib: 1024, m: 1024, gib: 1024 ** 2, g: 1024 ** 2 };
const toKiB = (value: string | undefined, unit = "KiB"): number | null => {
  const n = Number(value);
  const f = KIB[unit.toLowerCase() as keyof typeof KIB];
  return Number.isFinite(n) && f !== undefined ? n * f : null;
};

/** libvirt says "Intel"/"AMD"; /proc/cpuinfo (the report) says "GenuineIntel"/"AuthenticAMD". */
const VENDORS: Record<string, string> = { GenuineIntel: "Intel", AuthenticAMD: "AMD", HygonGenuine: "Hygon" };

function passthroughReasons(mode: string, f: MigrationFacts): string[] {
  const [src, dst] = [f.sourceHostCpu, f.target.hostCpu];
  const name = f.target.hostname;
  const reportVendor = f.targetReport.cpu.vendor;
  const dstVendor = dst?.vendor ?? (reportVendor ? (VENDORS[reportVendor] ?? reportVendor) : null);
  const hint = "use a named CPU model to migrate between different CPUs";
  if (!src?.model || !dst?.model)
    return [
      `CPU: the VM uses ${mode} and a host CPU is unknown (source "${src?.model ?? "unknown"}", ${name} "${dst?.model ?? "unknown"}")`,
    ];
  if (src.vendor && dstVendor && src.vendor !== dstVendor)
    return [`CPU: the VM uses ${mode} on an ${src.vendor} host CPU; ${name}'s is ${dstVendor} (${hint})`];
  if (src.model !== dst.model)
    return [`CPU: the VM uses ${mode} on a "${src.model}" host CPU; ${name}'s is "${dst.model}" (${hint})`];
  const missing = src.features.filter((x) => !dst.features.includes(x));
  return missing.length
    ? [`CPU: the VM uses ${mode} and ${name}'s host CPU lacks ${missing.join(", ")} (${hint})`]
    : [];
}

function cpuReasons(domain: Node, f: MigrationFacts): string[] {
  const cpu = one(domain, "cpu");
  if (!cpu) return [];
  const mode = attr(cpu, "mode") ?? "custom";
  if (mode === "host-passthrough" || mode === "maximum") return passthroughReasons(mode, f);
  const model = text(one(cpu, "model"));
  if (!model) return [];
  return f.target.usableCpuModels.includes(model)
    ? []
    : [`CPU: model "${model}" is not usable on ${f.target.hostname} (not in its domain capabilities)`];
}

const pciAddress = (a: Node | undefined) => {
  const hex = (k: string, w: number) => (attr(a, k) ?? "0").replace(/^0x/, "").padStart(w, "0");
  return `${hex("domain", 4)}:${hex("bus", 2)}:${hex("slot", 2)}.${hex("function", 1)}`;
};
const CANNOT = "and a VM with a host device cannot be live-migrated (detach it first)";

function hostdevReasons(devices: Node | undefined, report: MigrationTargetReport): string[] {
  const onTarget = (address: string) =>
    report.pci.some((p) => p.address === address) ? "" : `; the target has no device at ${address}`;
  const hostdevs = all(devices, "hostdev").map((h) => {
    const type = attr(h, "type") ?? "unknown";
    const source = one(h, "source");
    if (type === "pci") {
      const address = pciAddress(one(source, "address"));
      return `passthrough: PCI device ${address} is assigned to the VM ${CANNOT}${onTarget(address)}`;
    }
    if (type === "usb") {
      const id = [attr(one(source, "vendor"), "id"), attr(one(source, "product"), "id")];
      const what = id.every(Boolean) ? ` ${id.join(":").replace(/0x/g, "")}` : "";
      return `passthrough: USB device${what} is assigned to the VM ${CANNOT}`;
    }
    if (type === "mdev") {
      const uuid = attr(one(source, "address"), "uuid");
      return `passthrough: mediated device${uuid ? ` ${uuid}` : ""} is assigned to the VM ${CANNOT}`;
    }
    return `passthrough: a ${type} host device is assigned to the VM ${CANNOT}`;
  });
  // <interface type='hostdev'>: an SR-IOV VF handed to the guest, a PCI device all the same.
  const vfs = all(devices, "interface")
    .filter((n) => attr(n, "type") === "hostdev")
    .map((n) => {
      const address = pciAddress(one(one(n, "source"), "address"));
      return `passthrough: NIC on PCI device ${address} (type hostdev, an SR-IOV VF) ${CANNOT}${onTarget(address)}`;
    });
  return [...hostdevs, ...vfs];
}

function nicReasons(devices: Node | undefined, f: MigrationFacts): string[] {
  const reasons: string[] = [];
  const netdevs = new Map(f.targetReport.nics.flatMap((n) => (n.name ? [[n.name, n] as const] : [])));
  for (const nic of all(devices, "interface")) {
    const type = attr(nic, "type");
    const source = one(nic, "source");
    const ovs = attr(one(nic, "virtualport"), "type") === "openvswitch";
    const vlan = all(one(nic, "vlan"), "tag").map((t) => attr(t, "id"));
    if (type === "bridge") {
      const bridge = attr(source, "bridge") ?? "";
      const dev = netdevs.get(bridge);
      if (ovs) {
        if (!dev)
          reasons.push(`network: Open vSwitch bridge "${bridge}" does not exist on ${f.target.hostname}`);
      } else if (dev?.kind !== "bridge") {
        reasons.push(`network: bridge "${bridge}" does not exist on ${f.target.hostname}`);
      } else if (vlan.length > 0 && f.targetReport.vswitch?.bridgeVlanFiltering !== true) {
        reasons.push(
          `network: VLAN ${vlan.join(",")} on bridge "${bridge}" needs bridge VLAN filtering, which ${f.target.hostname}'s kernel does not offer`,
        );
      }
    } else if (type === "direct") {
      // macvtap: the guest's NIC hangs off a host interface of that name.
      const dev = attr(source, "dev") ?? "";
      if (!netdevs.has(dev))
        reasons.push(
          `network: interface "${dev}" (the NIC's macvtap device) does not exist on ${f.target.hostname}`,
        );
    } else if (type === "network") {
      const net = attr(source, "network") ?? "";
      if (!f.target.activeNetworks.includes(net))
        reasons.push(`network: libvirt network "${net}" is not active on ${f.target.hostname}`);
    }
  }
  return reasons;
}

function hugepageReasons(domain: Node, f: MigrationFacts): string[] {
  // <hugepages/> parses as an empty string: its presence is the key, not a truthy value.
  const backing = one(domain, "memoryBacking");
  if (!backing || typeof backing !== "object" || !("hugepages" in backing)) return [];
  const memory = one(domain, "memory");
  const needKiB = toKiB(text(memory), attr(memory, "unit"));
  if (needKiB === null) return [];
  const { hugepages, hugepageSizeKiB } = f.targetReport.memory;
  const sizes = Object.keys(hugepages).map((k) => Number.parseInt(k, 10));
  const name = f.target.hostname;
  const pages = all(one(backing, "hugepages"), "page");
  // No <page>: the host's default size. Several: each backs part of the guest's NUMA cells, so
  // each size on its own would have to cover the memory at worst.
  const wanted = pages.length
    ? pages.map((p) => toKiB(attr(p, "size"), attr(p, "unit")))
    : [hugepageSizeKiB ?? (sizes.length === 1 ? sizes[0] : null)];
  return [...new Set(wanted)].flatMap((pageKiB) => {
    if (!pageKiB) return [`hugepages: ${name}'s report does not say its default hugepage size`];
    const counts = hugepages[`${pageKiB}kB`];
    if (!counts)
      return [
        `hugepages: the VM uses ${pageKiB} KiB pages; ${name} has none of that size (${sizes.length ? `it has ${sizes.map((k) => `${k} KiB`).join(", ")}` : "no hugepages"})`,
      ];
    const need = Math.ceil(needKiB / pageKiB);
    return counts.free >= need
      ? []
      : [`hugepages: the VM needs ${need} free ${pageKiB} KiB pages; ${name} has ${counts.free}`];
  });
}

/** A disk that is a shared pool's volume needs that pool active on the target (network disks and
 *  copied file disks need nothing there). */
function poolReasons(devices: Node | undefined, f: MigrationFacts): string[] {
  const pools = f.target.activePools;
  if (!pools) return [];
  return all(devices, "disk")
    .filter((d) => attr(d, "type") === "volume")
    .flatMap((d) => {
      const pool = attr(one(d, "source"), "pool") ?? "";
      const dev = attr(one(d, "target"), "dev") ?? "?";
      return pools.includes(pool)
        ? []
        : [
            `storage: disk ${dev} is a volume of pool "${pool}", which is not active on ${f.target.hostname} (the cluster's storage plan defines it on every member)`,
          ];
    });
}

/** Every reason the target cannot take the VM; empty when it can. */
export function migrationRefusals(f: MigrationFacts): string[] {
  const domain = one(parseXmlTree(f.domainXml), "domain");
  if (!domain) return [`${f.vm}: its domain XML has no <domain> element`];
  const devices = one(domain, "devices");
  const same = f.target.hostname === f.sourceHostname;
  return [
    ...(same ? [`target: ${f.target.hostname} is the host the VM runs on`] : []),
    ...cpuReasons(domain, f),
    ...hostdevReasons(devices, f.targetReport),
    ...nicReasons(devices, f),
    ...poolReasons(devices, f),
    ...hugepageReasons(domain, f),
  ];
}

/** The file-backed disks a storage copy moves (target device and source path). */
export function localDisks(domainXml: string): { target: string; path: string }[] {
  const domain = one(parseXmlTree(domainXml), "domain");
  return all(one(domain, "devices"), "disk")
    .filter((d) => attr(d, "device") !== "cdrom" && attr(d, "type") === "file")
    .flatMap((d) => {
      const target = attr(one(d, "target"), "dev");
      const file = attr(one(d, "source"), "file");
      return target && file ? [{ target, path: file }] : [];
    });
}

/**
 * The first <cpu>...</cpu> after `after` (the host's in capabilities, the only one in domain
 * capabilities), "" when none: the rest, guest machine types by the hundred, is tens of KiB the
 * check never reads, 20-25 ms of parsing each.
 */
function cpuSection(xml: string, after = ""): string {
  const from = after ? xml.indexOf(after) : 0;
  const open = /<cpu[\s>]/g;
  open.lastIndex = Math.max(from, 0);
  const start = from < 0 ? -1 : (open.exec(xml)?.index ?? -1);
  const end = start < 0 ? -1 : xml.indexOf("</cpu>", start);
  return end < 0 ? "" : xml.slice(start, end + "</cpu>".length);
}

/** Usable custom CPU models from `virsh domcapabilities` XML. */
export function usableCpuModels(domcapsXml: string): string[] {
  const section = `<domainCapabilities>${cpuSection(domcapsXml)}</domainCapabilities>`;
  const caps = one(parseXmlTree(section), "domainCapabilities");
  const custom = all(one(caps, "cpu"), "mode").find((m) => attr(m, "name") === "custom");
  return all(custom, "model")
    .filter((m) => attr(m, "usable") !== "no")
    .flatMap((m) => (text(m) ? [text(m) as string] : []));
}

/** The host CPU from `virsh capabilities` XML; null when it names none. */
export function hostCpu(capsXml: string): HostCpu | null {
  const section = `<capabilities><host>${cpuSection(capsXml, "<host>")}</host></capabilities>`;
  const caps = one(parseXmlTree(section), "capabilities");
  const cpu = one(one(caps, "host"), "cpu");
  if (!cpu) return null;
  return {
    vendor: text(one(cpu, "vendor")) ?? null,
    model: text(one(cpu, "model")) ?? null,
    features: all(cpu, "feature").flatMap((x) => attr(x, "name") ?? []),
  };
}
