// The Hardware screen's items: a summary per component and every check, each with the detail lines
// shown on drill-down (sources, state, remediation). Built once per host report.
import { diskLabel, nicLabel, pciLabel } from "../answer/match.js";
import type { Check } from "../checks/index.js";
import { diskContents, diskExclusion } from "../checks/resources.js";
import type { DiskReport, HostReport, NicReport, PciDevice } from "../detect/types.js";
import type { Category, Item } from "./model.js";

export const checkDetail = (c: Check): string[] => [
  `[${c.level.toUpperCase()}] ${c.id}: ${c.title}`,
  `state: ${c.state}`,
  c.reason,
  ...(c.remediation ? [`fix${c.reboot ? " (needs reboot)" : ""}: ${c.remediation}`] : []),
  ...c.facts.slice(0, 6).map((f) => `from ${f}`),
];

const checkItem = (c: Check): Item => ({
  label: `${c.id}: ${c.reason}`,
  level: c.level,
  detail: checkDetail(c),
});
const yes = (b: boolean | null) => (b === null ? "unknown" : b ? "yes" : "no");

export function hardwareItems(report: HostReport, checks: Check[]): Record<Category, Item[]> {
  const byPrefix = (...p: string[]) => checks.filter((c) => p.some((x) => c.id.startsWith(x))).map(checkItem);
  const { cpu, iommu } = report;
  const cpuItem: Item = {
    label: `${cpu.model ?? "unknown CPU"}`,
    level: null,
    detail: [
      `model: ${cpu.model ?? "unknown"} (${cpu.vendor ?? "?"}, ${cpu.architecture})`,
      `sockets ${cpu.sockets ?? "?"}, cores ${cpu.cores ?? "?"}, threads ${cpu.threads ?? "?"}`,
      `virtualization: ${cpu.virt ?? "none"}; EPT/NPT ${cpu.secondLevelPaging}; 1G pages ${yes(cpu.pdpe1gb)}`,
      `running under a hypervisor: ${yes(cpu.hypervisor)}; firmware lock ${cpu.firmwareVirt}`,
      cpu.firmwareVirtDetail,
      `KVM probe: ${report.kvm.probe.verdict}: ${report.kvm.probe.detail}`,
    ],
  };
  const iommuItem: Item = {
    label: `ACPI ${iommu.acpiTable ?? "table unknown"}, ${iommu.groups.length} groups`,
    level: null,
    detail: [
      `ACPI table: ${iommu.acpiTable ?? "none found"}${iommu.acpiTablesReadable ? "" : " (tables not readable)"}`,
      `kernel parameters: ${
        Object.entries(iommu.cmdlineParams)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ") || "none"
      }`,
      `groups: ${iommu.groups.length}; interrupt remapping ${iommu.interruptRemapping}`,
    ],
  };
  const nicItem = (n: NicReport): Item => ({
    label: `${nicLabel(n)}${n.management ? " (management)" : ""} ${n.kind ?? ""} ${n.driver ?? ""}`,
    level: null,
    detail: [
      `${nicLabel(n)}: ${n.kind ?? "unknown kind"}${n.virtual ? " (virtual)" : ""}`,
      `PCI ${n.pciAddress ?? "-"}, driver ${n.driver ?? "-"}, MAC ${n.mac ?? "-"}`,
      `link ${n.operstate ?? "?"}, carrier ${yes(n.carrier)}, speed ${n.speedMbps ?? "?"} Mb/s, MTU ${n.mtu ?? "?"}`,
      `master: ${n.master ?? "-"}; SR-IOV: ${n.sriov ? `${n.sriov.numVfs}/${n.sriov.totalVfs} VFs` : "no"}`,
      n.management ? "management NIC: carries the default route; never offered for VFIO or VF changes" : "",
    ].filter(Boolean),
  });
  const pciItem = (d: PciDevice): Item => ({
    label: pciLabel(d),
    level: null,
    detail: [
      pciLabel(d),
      `class ${d.classId ?? "?"} ${d.className ?? ""}`,
      `driver ${d.driver ?? "-"}${d.driverOverride ? ` (override ${d.driverOverride})` : ""}, NUMA ${d.numaNode ?? "?"}`,
      `IOMMU group ${d.iommuGroup ?? "-"}, reset ${d.resetMethods?.join(" ") || "unknown"}, boot VGA ${yes(d.bootVga)}`,
      d.sriov ? `SR-IOV: ${d.sriov.numVfs}/${d.sriov.totalVfs} VFs` : "",
      d.physfn ? `virtual function of ${d.physfn}` : "",
    ].filter(Boolean),
  });
  const diskItem = (d: DiskReport): Item => {
    const why = diskExclusion(d, report) ?? diskContents(d);
    return {
      label: `${diskLabel(d)}${why ? `: ${why}` : ": free"}`,
      level: why ? "note" : "pass",
      detail: [
        diskLabel(d),
        `${d.path}, ${d.transport ?? "?"}, ${d.rotational ? "rotational" : "solid state"}, WWN ${d.wwn ?? "-"}`,
        `can be used for a pool: ${why ? `no, ${why}` : "yes"}`,
        `roles: ${d.roles.join(", ") || "-"}; signatures: ${d.signatures.join(", ") || "-"}`,
        `partitions: ${d.partitions.map((p) => `${p.name}${p.mountpoints.length ? ` on ${p.mountpoints.join(",")}` : ""}`).join(", ") || "-"}`,
        ...d.byId.slice(0, 3).map((b) => `by-id: ${b}`),
      ],
    };
  };
  return {
    "CPU/KVM": [cpuItem, ...byPrefix("cpu.", "kvm.", "dev.", "vhost", "tun")],
    IOMMU: [iommuItem, ...byPrefix("iommu.", "passthrough.")],
    NICs: [...report.nics.map(nicItem), ...byPrefix("net.", "sriov.")],
    PCI: report.pci.map(pciItem),
    Disks: [...report.disks.map(diskItem), ...byPrefix("storage.")],
    Checks: checks.map(checkItem),
  };
}
