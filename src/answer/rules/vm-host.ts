// What an answer's VMs ask of the host, checked when the answer is validated and planned rather
// than only when a VM is deployed: hugepages (per size and NUMA node, the VMs together), CPUs pinned
// across the VMs, and vhost-net. The checks themselves are the deploy preflight's (vm/preflight.ts),
// called here, so `vm deploy` and the answer file cannot disagree.
import type { HostReport } from "../../detect/types.js";
import { hugepageVerdict, placeTogether, vhostNetWarning } from "../../vm/preflight.js";
import type { Answer } from "../schema.js";
import type { Facts } from "./facts.js";
import { type Rule, rule } from "./types.js";

/** Each VM's passthrough devices (PCI addresses), as the planner resolves them. */
const hostdevsOf = (answer: Answer, facts: Facts, i: number): string[] =>
  (answer.vms[i]?.passthrough ?? []).flatMap(
    (_, j) => facts.pci(`vms[${i}].passthrough[${j}]`)?.address ?? [],
  );

const placementsOf = (answer: Answer, report: HostReport, facts: Facts) =>
  placeTogether(
    report,
    answer.vms.map((vm, i) => ({ vcpus: vm.vcpus, pin: vm.pin, hostdevs: hostdevsOf(answer, facts, i) })),
  );

/**
 * Pages of the default hugepage size the answer itself reserves (kvm.hugepages), which the pool
 * holds after the apply: host-wide, or per node when the kernel spreads them over the NUMA nodes.
 */
function reserved(answer: Answer, report: HostReport, node: number | null): number | undefined {
  const size = report.memory.hugepageSizeKiB;
  const hp = answer.kvm?.hugepages;
  const pages = size === 2048 ? hp?.pages2M : size === 1024 * 1024 ? hp?.pages1G : undefined;
  if (pages === undefined) return undefined;
  const nodes = Math.max(1, report.memory.numa.length);
  return node === null ? pages : Math.floor(pages / nodes);
}

export const vmHostRules: Rule[] = [
  rule(
    "vms.hugepages",
    "hugepage-backed VMs fit the free hugepages of the default size, per NUMA node when pinned, together",
    ({ answer, report, facts }, emit) => {
      if (!answer.vms.some((vm) => vm.hugepages)) return;
      const placements = placementsOf(answer, report, facts);
      const taken = new Map<string, number>(); // pages the VMs before take, per pool
      answer.vms.forEach((vm, i) => {
        if (!vm.hugepages) return;
        const node = placements[i]?.node ?? null;
        const pool = String(node);
        const key = `${report.memory.hugepageSizeKiB}kB`;
        const counts =
          node === null
            ? report.memory.hugepages[key]
            : report.memory.numa.find((n) => n.id === node)?.hugepages[key];
        const mine = reserved(answer, report, node);
        const before = taken.get(pool) ?? 0;
        // Never enough: more than the pool holds at all (or than the answer reserves).
        const all = hugepageVerdict(vm, report, node, { taken: before, free: mine ?? counts?.total ?? 0 });
        if (!all.ok) {
          emit.error(`vms[${i}].hugepages`, all.message, all.remediation);
          return;
        }
        taken.set(pool, before + all.need);
        // Enough in all, too few free now: VMs running already hold them (this answer's own, on a
        // re-run, among them), so the start may fail; the deploy's preflight checks again.
        if (mine === undefined) {
          const now = hugepageVerdict(vm, report, node, { taken: before });
          if (!now.ok)
            emit.warning(
              `vms[${i}].hugepages`,
              `${now.message} now (${counts?.total ?? 0} in all: running VMs hold the rest)`,
              now.remediation,
            );
        }
      });
    },
  ),
  rule(
    "vms.pinning",
    "pinned VMs get CPUs of their own on their node, allocated across the answer's VMs",
    ({ answer, report, facts }, emit) => {
      if (!answer.vms.some((vm) => vm.pin)) return;
      placementsOf(answer, report, facts).forEach((p, i) => {
        // (A report without a CPU list leaves the VM unpinned, as the deploy does: nothing to share.)
        if (p?.reason.includes("shared with other pinned domains"))
          emit.warning(
            `vms[${i}].pin`,
            `VM ${answer.vms[i]?.name}: ${p.reason}`,
            "give the pinned VMs fewer vCPUs in all, or pin fewer of them",
          );
      });
    },
  ),
  rule(
    "vms.vhost-net",
    "a multi-vCPU VM on a host without vhost-net gets qemu's one-queue virtio backend",
    ({ answer, report }, emit) => {
      answer.vms.forEach((vm, i) => {
        // Known absent only: an unknown (a snapshot, an offline root) is said by the deploy itself.
        const w = vm.nics.length && report.kvm.vhostNet === false ? vhostNetWarning(vm.vcpus, report) : null;
        if (w) emit.warning(`vms[${i}].vcpus`, w);
      });
    },
  ),
];
