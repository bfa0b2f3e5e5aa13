// Where a VM's vCPUs and memory should live: on the NUMA node nearest its passthrough devices or
// VFs (crossing the interconnect costs every DMA), else node 0. Pure, over the host report.
import { parseCpuList } from "../detect/sysfs.js";
import type { HostReport } from "../detect/types.js";

export interface Placement {
  node: number | null;
  cpus: number[];
  reason: string;
}

export function placeVm(report: HostReport, devices: string[]): Placement {
  const nodes = report.memory.numa;
  const tied = devices
    .map((a) => report.pci.find((d) => d.address === a))
    .map((d) => d?.numaNode)
    .filter((n): n is number => typeof n === "number");
  const chosen = tied[0] ?? nodes[0]?.id ?? null;
  const node = nodes.find((n) => n.id === chosen);
  const cpus = parseCpuList(node?.cpus ?? report.cpu.onlineCpus ?? null) ?? [];
  const reason =
    tied.length > 0
      ? `node ${chosen}: nearest to ${devices.join(", ")}`
      : node
        ? `node ${chosen}: nothing ties the VM to another node`
        : "no NUMA information: not pinned to a node";
  return { node: node ? chosen : null, cpus, reason };
}
