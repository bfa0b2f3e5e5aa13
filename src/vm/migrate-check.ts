// What a live migration needs from its target, checked before anything starts: one function over
// facts gathered elsewhere (the VM's live domain XML, the target's host report, what the target's
// libvirtd says over TLS), returning every reason the target cannot take the VM. An empty list
// means go; libvirt still has the last word during the migration itself.
//
// - CPU: a custom (or host-model, expanded in the live XML) model must be usable on the target's
//   hypervisor (its domain capabilities); host-passthrough needs the same host CPU model.
// - Passthrough: libvirt cannot live-migrate a VM with a PCI host device; the reason also says
//   whether the target has that device at all.
// - NICs: a bridge NIC's bridge must exist on the target (a Linux bridge; any interface of that
//   name for Open vSwitch, whose bridge is an internal port), a VLAN on a Linux bridge needs bridge
//   VLAN filtering there, a libvirt network must be active on the target.
// - Hugepages: as many free pages of the VM's size on the target as the VM's memory takes.
import { XMLParser } from "fast-xml-parser";
import type { HostReport } from "../detect/types.js";

/** What the target's libvirtd reported over its TLS connection. */
export interface TargetLibvirtFacts {
  hostname: string;
  /** Host CPU model from `virsh capabilities` (host-passthrough compares it). */
  hostCpuModel: string | null;
  /** Custom CPU models the target's hypervisor can run for this VM's virt type, usable ones only. */
  usableCpuModels: string[];
  /** Active libvirt networks. */
  activeNetworks: string[];
}

export interface MigrationFacts {
  vm: string;
  domainXml: string;
  sourceHostname: string;
  sourceHostCpuModel: string | null;
  target: TargetLibvirtFacts;
  targetReport: HostReport;
}

type Node = Record<string, unknown>;
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  isArray: (_name, _path, _leaf, isAttribute) => !isAttribute,
});
const all = (n: unknown, key: string): Node[] => ((n as Node | undefined)?.[key] as Node[] | undefined) ?? [];
const one = (n: unknown, key: string): Node | undefined => all(n, key)[0];
const attr = (n: Node | undefined, key: string): string | undefined => {
  const v = n?.[`@${key}`];
  return v === undefined ? undefined : String(v);
};
const text = (n: unknown): string | undefined => {
  if (n === undefined || n === null) return undefined;
  if (typeof n !== "object") return String(n);
  const t = (n as Node)["#text"];
  return t === undefined ? undefined : String(t);
};

const KIB = { b: 1 / 1024, bytes: 1 / 1024, kib: 1, k: 1, mib: 1024, m: 1024, gib: 1024 ** 2, g: 1024 ** 2 };
const toKiB = (value: string | undefined, unit = "KiB"): number | null => {
  const n = Number(value);
  const f = KIB[unit.toLowerCase() as keyof typeof KIB];
  return Number.isFinite(n) && f !== undefined ? n * f : null;
};

function cpuReasons(domain: Node, f: MigrationFacts): string[] {
  const cpu = one(domain, "cpu");
  if (!cpu) return [];
  const mode = attr(cpu, "mode") ?? "custom";
  if (mode === "host-passthrough" || mode === "maximum") {
    const [src, dst] = [f.sourceHostCpuModel, f.target.hostCpuModel];
    return src && dst && src === dst
      ? []
      : [
          `CPU: the VM uses ${mode} on a "${src ?? "unknown"}" host CPU; the target's is "${dst ?? "unknown"}" (use a named CPU model to migrate between different CPUs)`,
        ];
  }
  const model = text(one(cpu, "model"));
  if (!model) return [];
  return f.target.usableCpuModels.includes(model)
    ? []
    : [`CPU: model "${model}" is not usable on ${f.target.hostname} (not in its domain capabilities)`];
}

function hostdevReasons(devices: Node | undefined, report: HostReport): string[] {
  return all(devices, "hostdev")
    .filter((h) => attr(h, "type") === "pci")
    .map((h) => {
      const a = one(one(h, "source"), "address");
      const hex = (k: string, w: number) => (attr(a, k) ?? "0").replace(/^0x/, "").padStart(w, "0");
      const address = `${hex("domain", 4)}:${hex("bus", 2)}:${hex("slot", 2)}.${hex("function", 1)}`;
      const there = report.pci.some((p) => p.address === address);
      return `passthrough: PCI device ${address} is assigned to the VM and a VM with a host device cannot be live-migrated (detach it first)${there ? "" : `; the target has no device at ${address}`}`;
    });
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
  const page = one(one(backing, "hugepages"), "page");
  const sizes = Object.keys(f.targetReport.memory.hugepages);
  const only = sizes.length === 1 ? Number.parseInt(sizes[0] as string, 10) : null;
  const pageKiB = page
    ? toKiB(attr(page, "size"), attr(page, "unit"))
    : (f.targetReport.memory.hugepageSizeKiB ?? only);
  if (!pageKiB) return [`hugepages: ${f.target.hostname}'s report does not say its default hugepage size`];
  const free = f.targetReport.memory.hugepages[`${pageKiB}kB`]?.free ?? 0;
  const need = Math.ceil(needKiB / pageKiB);
  return free >= need
    ? []
    : [`hugepages: the VM needs ${need} free ${pageKiB} KiB pages; ${f.target.hostname} has ${free}`];
}

/** Every reason the target cannot take the VM; empty when it can. */
export function migrationRefusals(f: MigrationFacts): string[] {
  const domain = one(parser.parse(f.domainXml), "domain");
  if (!domain) return [`${f.vm}: its domain XML has no <domain> element`];
  const devices = one(domain, "devices");
  const same = f.target.hostname === f.sourceHostname;
  return [
    ...(same ? [`target: ${f.target.hostname} is the host the VM runs on`] : []),
    ...cpuReasons(domain, f),
    ...hostdevReasons(devices, f.targetReport),
    ...nicReasons(devices, f),
    ...hugepageReasons(domain, f),
  ];
}

/** The file-backed disks a storage copy moves (target device and source path). */
export function localDisks(domainXml: string): { target: string; path: string }[] {
  const domain = one(parser.parse(domainXml), "domain");
  return all(one(domain, "devices"), "disk")
    .filter((d) => attr(d, "device") !== "cdrom" && attr(d, "type") === "file")
    .flatMap((d) => {
      const target = attr(one(d, "target"), "dev");
      const file = attr(one(d, "source"), "file");
      return target && file ? [{ target, path: file }] : [];
    });
}

/** Usable custom CPU models from `virsh domcapabilities` XML. */
export function usableCpuModels(domcapsXml: string): string[] {
  const caps = one(parser.parse(domcapsXml), "domainCapabilities");
  const custom = all(one(caps, "cpu"), "mode").find((m) => attr(m, "name") === "custom");
  return all(custom, "model")
    .filter((m) => attr(m, "usable") !== "no")
    .flatMap((m) => (text(m) ? [text(m) as string] : []));
}

/** The host CPU model from `virsh capabilities` XML. */
export function hostCpuModel(capsXml: string): string | null {
  const caps = one(parser.parse(capsXml), "capabilities");
  return text(one(one(one(caps, "host"), "cpu"), "model")) ?? null;
}
