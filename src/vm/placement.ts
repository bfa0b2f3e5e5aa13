// Where a VM's vCPUs and memory should live: on the NUMA node nearest its passthrough devices or
// VFs (crossing the interconnect costs every DMA), else node 0; and on which CPUs of that node. CPUs
// are allocated across VMs: each vCPU goes to the node's CPU that the fewest vCPUs of other domains
// are already pinned to (lowest number first on a tie), so a second pinned VM lands beside the first,
// not on top of it. Pure, over the host report and the CPUs other domains hold.
import { attribute, descendants, parseXmlTree } from "../core/xml-tree.js";
import { parseCpuList } from "../detect/sysfs.js";
import type { HostReport } from "../detect/types.js";

export interface Placement {
  node: number | null;
  /** Host CPU for each vCPU, in vCPU order (empty: not pinned). */
  cpus: number[];
  reason: string;
}

/** How many vCPUs of other domains are pinned to each host CPU. */
export type CpuLoad = ReadonlyMap<number, number>;

/** libvirt's cpuset syntax: "0-3,^2,8" (ranges, single CPUs, exclusions). null when it is not one. */
export function parseCpuset(text: string): number[] | null {
  const on = new Set<number>();
  const off = new Set<number>();
  for (const part of text.split(",").map((p) => p.trim())) {
    const m = /^(\^)?(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const a = Number(m[2]);
    const b = m[3] === undefined ? a : Number(m[3]);
    if (b < a || b - a > 65536) return null;
    for (let i = a; i <= b; i++) (m[1] ? off : on).add(i);
  }
  return [...on].filter((c) => !off.has(c)).sort((x, y) => x - y);
}

/** The CPU load of domain definitions: every <vcpupin cpuset> counts once per CPU it allows. */
export function pinnedLoad(domainXmls: Iterable<string>, claimed: Iterable<number[]> = []): CpuLoad {
  const load = new Map<number, number>();
  const add = (cpus: number[]) => {
    for (const c of cpus) load.set(c, (load.get(c) ?? 0) + 1);
  };
  for (const xml of domainXmls) {
    for (const pin of descendants(parseXmlTree(xml), "vcpupin")) {
      const cpuset = attribute(pin, "cpuset");
      if (cpuset) add(parseCpuset(cpuset) ?? []);
    }
  }
  for (const cpus of claimed) add(cpus);
  return load;
}

export function placeVm(
  report: HostReport,
  devices: string[],
  o: { vcpus?: number; load?: CpuLoad } = {},
): Placement {
  const nodes = report.memory.numa;
  const tied = devices
    .map((a) => report.pci.find((d) => d.address === a))
    .map((d) => d?.numaNode)
    .filter((n): n is number => typeof n === "number");
  const chosen = tied[0] ?? nodes[0]?.id ?? null;
  const node = nodes.find((n) => n.id === chosen);
  const candidates = parseCpuList(node?.cpus ?? report.cpu.onlineCpus ?? null) ?? [];
  const where =
    tied.length > 0
      ? `node ${chosen}: nearest to ${devices.join(", ")}`
      : node
        ? `node ${chosen}: nothing ties the VM to another node`
        : "no NUMA information: not pinned to a node";
  const vcpus = o.vcpus ?? candidates.length;
  const load = new Map(o.load ?? []);
  const cpus: number[] = [];
  for (let i = 0; i < vcpus && candidates.length; i++) {
    const pick = candidates.reduce((best, c) => ((load.get(c) ?? 0) < (load.get(best) ?? 0) ? c : best));
    cpus.push(pick);
    load.set(pick, (load.get(pick) ?? 0) + 1);
  }
  const shared = cpus.filter((c) => (o.load?.get(c) ?? 0) > 0);
  const detail = cpus.length
    ? `; vCPUs on CPU ${cpus.join(",")}${shared.length ? ` (shared with other pinned domains: ${[...new Set(shared)].join(",")}; the node has too few free CPUs)` : ""}`
    : "";
  return { node: node ? chosen : null, cpus, reason: `${where}${detail}` };
}
