// Hugepages are taken from memory at boot and spread evenly over the NUMA nodes: the reservation must
// leave the host (and each node) memory to run, and 1 GiB pages need the CPU's pdpe1gb flag.
import { type Rule, rule } from "./types.js";

const KiB = 1024;
const GiB = 1024 ** 3;

/** What the host keeps for itself: 10% of its memory, at least 2 GiB. */
export const hostReserveBytes = (totalBytes: number) => Math.max(2 * GiB, totalBytes / 10);

const gib = (bytes: number) => `${(bytes / GiB).toFixed(1)} GiB`;

export const memoryRules: Rule[] = [
  rule(
    "memory.hugepages",
    "hugepages fit in memory, per NUMA node, with room left for the host",
    ({ answer, report }, emit) => {
      const hp = answer.kvm?.hugepages;
      const bytes = (hp?.pages2M ?? 0) * 2 * 1024 ** 2 + (hp?.pages1G ?? 0) * GiB;
      if (!hp || bytes === 0) return;
      const path = hp.pages1G ? "kvm.hugepages.pages1G" : "kvm.hugepages.pages2M";
      const total = report.memory.totalKiB;
      if (total === null) {
        emit.warning(path, `memory size unknown: ${gib(bytes)} of hugepages cannot be checked against it`);
        return;
      }
      const totalBytes = total * KiB;
      const room = totalBytes - hostReserveBytes(totalBytes);
      const fix = `reserve at most ${gib(Math.max(0, room))} of hugepages on this host`;
      if (bytes > room) {
        emit.error(
          path,
          `${gib(bytes)} of hugepages on a host with ${gib(totalBytes)} of memory: the host keeps at least ${gib(hostReserveBytes(totalBytes))} for itself`,
          fix,
        );
        return;
      }
      const nodes = report.memory.numa.filter((n) => n.memoryKiB !== null);
      if (nodes.length < 2) return;
      const share = bytes / nodes.length;
      for (const n of nodes) {
        const nodeBytes = (n.memoryKiB ?? 0) * KiB;
        if (share > nodeBytes - hostReserveBytes(totalBytes) / nodes.length)
          emit.error(
            path,
            `hugepages are spread evenly over ${nodes.length} NUMA nodes: ${gib(share)} on node ${n.id}, which has ${gib(nodeBytes)}`,
            fix,
          );
      }
    },
  ),
  rule("memory.hugepages-1g-cpu", "1 GiB hugepages need the pdpe1gb CPU flag", ({ answer, report }, emit) => {
    if (answer.kvm?.hugepages?.pages1G && !report.cpu.pdpe1gb)
      emit.error("kvm.hugepages.pages1G", "this CPU has no pdpe1gb flag: 1 GiB hugepages are not supported");
  }),
];
