// The human form of `kvmstrap detect`: the facts an operator scans first, then every check with its
// remediation. Lines stay within 80 columns where the data allows (serial consoles).
import type { Check } from "../checks/types.js";
import type { HostReport } from "../detect/types.js";
import type { Style } from "./style.js";

const gib = (kib: number | null) => (kib === null ? "unknown" : `${(kib / 1024 / 1024).toFixed(1)} GiB`);
const bytes = (b: number | null) => {
  if (b === null) return "?";
  const units = ["B", "KB", "MB", "GB", "TB", "PB"];
  let v = b;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
};
const orUnknown = (v: unknown) => (v === null || v === undefined || v === "" ? "unknown" : String(v));

export function renderLevel(level: Check["level"], s: Style): string {
  switch (level) {
    case "pass":
      return s.green("[PASS]");
    case "warn":
      return s.yellow("[WARN]");
    case "fail":
      return s.red("[FAIL]");
    default:
      return s.cyan("[NOTE]");
  }
}

/** Word-wraps text to width, keeping its leading spaces and indenting continuation lines. */
export function wrap(text: string, width: number, indent: number): string {
  if (width <= 0 || text.length <= width) return text;
  const lead = /^ */.exec(text)?.[0] ?? "";
  const out: string[] = [];
  let line = lead;
  for (const word of text.slice(lead.length).split(" ")) {
    if (line.trim() && line.length + 1 + word.length > width) {
      out.push(line);
      line = " ".repeat(indent) + word;
    } else line = line.trim() ? `${line} ${word}` : `${line}${word}`;
  }
  out.push(line);
  return out.join("\n");
}

/** width: the terminal's columns for people (serial consoles are 80 wide); 0 for no wrapping. */
export function renderReport(r: HostReport, checks: Check[], s: Style, width = 0): string {
  const L: string[] = [];
  const head = (t: string) => L.push("", s.bold(t));
  const kv = (k: string, v: string) => L.push(`  ${k.padEnd(14)} ${v}`);

  L.push(
    s.bold(
      `kvmstrap host report: ${r.hostname ?? "unknown host"}${r.live ? "" : ` (snapshot at ${r.root})`}`,
    ),
  );
  head("CPU");
  kv("model", `${orUnknown(r.cpu.model)} (${orUnknown(r.cpu.vendor)})`);
  kv(
    "topology",
    `${orUnknown(r.cpu.sockets)} socket(s), ${orUnknown(r.cpu.cores)} core(s), ${orUnknown(r.cpu.threads)} thread(s)${r.cpu.offlineCpus ? `, offline ${r.cpu.offlineCpus}` : ""}`,
  );
  kv(
    "virtualization",
    `${r.cpu.virt ?? "none"}; EPT/NPT ${r.cpu.secondLevelPaging}; 1G pages ${r.cpu.pdpe1gb ? "yes" : "no"}; guest of a hypervisor ${r.cpu.hypervisor ? "yes" : "no"}`,
  );
  kv("firmware lock", `${r.cpu.firmwareVirt} (${r.cpu.firmwareVirtDetail})`);

  head("KVM");
  const mods = Object.entries(r.kvm.modules).filter(([, m]) => m.loaded);
  kv("modules", mods.length ? mods.map(([n]) => n).join(", ") : "none loaded");
  const nodeState = (v: boolean | null) => (v === null ? "unknown" : v ? "yes" : "no");
  kv(
    "devices",
    `/dev/kvm ${nodeState(r.kvm.devKvm.present)}, /dev/vhost-net ${nodeState(r.kvm.vhostNet)}, /dev/net/tun ${nodeState(r.kvm.tun)}`,
  );
  if (r.vswitch) {
    const ovs = r.vswitch.ovsModule;
    kv(
      "switching",
      `openvswitch module ${nodeState(ovs)}${ovs === false ? " (OVS runs with datapath_type=netdev, in user space)" : ""}; bridge VLAN filtering ${nodeState(r.vswitch.bridgeVlanFiltering)}`,
    );
  }
  if (r.storageClients) {
    const c = r.storageClients;
    const iscsi = c.iscsiTcp === true && c.iscsiadm === true;
    const nfs = c.nfsClient === true && c.mountNfs === true;
    kv(
      "iSCSI",
      `iscsi_tcp ${nodeState(c.iscsiTcp)}, iscsiadm ${nodeState(c.iscsiadm)}: auto uses ${iscsi ? "the kernel" : "iscsi-direct"}`,
    );
    kv(
      "NFS client",
      `kernel ${nodeState(c.nfsClient)}, mount.nfs ${nodeState(c.mountNfs)}: auto uses ${nfs ? "a netfs pool" : "libnfs disks"}`,
    );
  }
  kv(
    "probe",
    `${r.kvm.probe.verdict}${r.kvm.probe.cached ? " (cached this boot)" : ""}: ${r.kvm.probe.detail}`,
  );

  head("IOMMU");
  kv("firmware", r.iommu.acpiTable ?? (r.iommu.acpiTablesReadable ? "no DMAR/IVRS table" : "unknown"));
  const params = Object.entries(r.iommu.cmdlineParams).map(([k, v]) => `${k}=${v}`);
  kv("cmdline", params.length ? params.join(" ") : "no iommu parameters");
  kv("groups", r.iommu.groupsPopulated ? `${r.iommu.groups.length}` : "none");

  head(`NICs (${r.nics.length})`);
  for (const n of r.nics) {
    // A long line (a virtual NIC with a speed and the management tag) wraps at 80 for serial consoles.
    const line = wrap(
      `  ${(n.name ?? "-").padEnd(12)} ${(n.pciAddress ?? "virtual").padEnd(13)} ${orUnknown(n.driver).padEnd(12)} ${n.mac ?? ""}${n.speedMbps ? ` ${n.speedMbps}Mb/s` : ""}${n.master ? ` in ${n.master}` : ""}${n.management ? " [management]" : ""}`,
      80,
      6,
    );
    L.push(n.management ? line.replace(/ ?\[management\]$/, (t) => s.bold(t)) : line);
    // Addresses under their interface, wrapped at 80 columns; an empty list prints nothing.
    if (Array.isArray(n.addresses) && n.addresses.length)
      L.push(wrap(`      ${n.addresses.map((a) => `${a.address}/${a.prefixLength}`).join(" ")}`, 80, 6));
  }
  // Said once: a snapshot carries no addresses, and no address is not the same as unknown ones.
  const unknownAddrs = r.nics.filter(
    (n) => n.name !== null && n.addresses !== undefined && !Array.isArray(n.addresses),
  );
  if (unknownAddrs.length)
    L.push(
      unknownAddrs.length === r.nics.filter((n) => n.name !== null).length
        ? "  addresses: unknown (not read from this root)"
        : wrap(`  addresses unknown: ${unknownAddrs.map((n) => n.name).join(", ")}`, 80, 4),
    );

  const disks = r.disks.filter((d) => !d.virtual);
  head(`Disks (${disks.length})`);
  for (const d of disks) {
    L.push(
      `  ${d.name.padEnd(10)} ${bytes(d.sizeBytes).padStart(8)} ${orUnknown(d.transport).padEnd(7)} ${d.model ?? ""}${d.roles.length ? ` [${d.roles.join(",")}]` : ""}`,
    );
  }

  head("Memory");
  kv("total", gib(r.memory.totalKiB));
  for (const n of r.memory.numa) kv(`node ${n.id}`, `cpus ${orUnknown(n.cpus)}, ${gib(n.memoryKiB)}`);

  head("PCI");
  kv("devices", `${r.pci.length}`);
  const gpus = r.pci.filter((d) => (d.classId ?? "").startsWith("03"));
  for (const g of gpus)
    kv("display", `${g.address} ${g.vendorName ?? g.vendorId} ${g.deviceName ?? g.deviceId}`);

  head("Checks");
  for (const c of checks) {
    // The level tag is 6 visible characters whatever its colour codes; wrap on the plain text.
    const head = wrap(`  [${c.level.toUpperCase()}] ${c.id}: ${c.reason}`, width, 9);
    L.push(head.replace(`[${c.level.toUpperCase()}]`, renderLevel(c.level, s)));
    if (c.remediation && c.level !== "pass")
      L.push(wrap(`         fix${c.reboot ? " (reboot)" : ""}: ${c.remediation}`, width, 14));
  }
  if (r.warnings.length) {
    head(`Warnings (${r.warnings.length})`);
    for (const w of r.warnings.slice(0, 20)) L.push(`  ${w.path}: ${w.message}`);
    if (r.warnings.length > 20) L.push(`  ... ${r.warnings.length - 20} more (see --json)`);
  }
  return `${L.join("\n")}\n`;
}
