// The vms section: unique names, NICs that resolve (bridges defined here or present on the host,
// SR-IOV PFs with an sriov entry, macvtap on a NIC with an interface), and each passthrough device
// in one VM. The passthrough safety rules (passthrough.ts) cover VM devices too.
import type { HostReport, NicReport } from "../../detect/types.js";
import { matchNics, nicLabel, pciLabel } from "../match.js";
import type { Answer } from "../schema.js";
import { hostdevNetworkName } from "./names.js";
import { type Rule, rule } from "./types.js";

const sameNic = (a: NicReport, b: NicReport) =>
  a.name !== null ? a.name === b.name : a.pciAddress !== null && a.pciAddress === b.pciAddress;

/** The sriov entry whose PF is `pf`, with its index and the hostdev network the planner defines for it. */
export function sriovEntryFor(
  answer: Answer,
  report: HostReport,
  pf: NicReport,
): { index: number; network: string } | null {
  for (const [index, entry] of answer.sriov.entries()) {
    const nic = matchNics(entry.pf, report).chosen[0];
    if (nic && sameNic(nic, pf)) return { index, network: hostdevNetworkName(entry, nicLabel(pf)) };
  }
  return null;
}

export const vmRules: Rule[] = [
  rule("vms.duplicate-name", "VM names are unique", ({ answer }, emit) => {
    const names = new Map<string, number>();
    answer.vms.forEach((vm, i) => {
      const prior = names.get(vm.name);
      if (prior !== undefined)
        emit.error(`vms[${i}].name`, `duplicate VM name "${vm.name}" (also vms[${prior}])`);
      else names.set(vm.name, i);
    });
  }),
  rule(
    "vms.bridge",
    "a VM's bridge is defined in network.bridges or present on the host",
    ({ answer, report }, emit) => {
      const hostBridges = report.nics.flatMap((n) => (n.kind === "bridge" && n.name ? [n.name] : []));
      const bridges = new Set([...(answer.network?.bridges ?? []).map((b) => b.name), ...hostBridges]);
      answer.vms.forEach((vm, i) => {
        vm.nics.forEach((nic, j) => {
          if ("bridge" in nic && !bridges.has(nic.bridge))
            emit.error(
              `vms[${i}].nics[${j}].bridge`,
              `bridge ${nic.bridge} is neither defined in network.bridges nor present on this host (${hostBridges.length ? `it has ${hostBridges.join(", ")}` : "it has no bridges"})`,
            );
        });
      });
    },
  ),
  rule(
    "vms.sriov-entry",
    "a VM's SR-IOV NIC names a PF with an sriov entry",
    ({ answer, report, facts }, emit) => {
      answer.vms.forEach((vm, i) => {
        vm.nics.forEach((_, j) => {
          const path = `vms[${i}].nics[${j}].sriov`;
          const pf = facts.nic(path);
          if (pf && !sriovEntryFor(answer, report, pf))
            emit.error(
              path,
              `${nicLabel(pf)} has no entry in sriov: (add one with a pf rule matching it and numVfs), so it has no VFs and no hostdev network to take one from`,
            );
        });
      });
    },
  ),
  rule("vms.macvtap", "a VM's macvtap NIC sits on a NIC with an interface", ({ answer, facts }, emit) => {
    answer.vms.forEach((vm, i) => {
      vm.nics.forEach((_, j) => {
        const path = `vms[${i}].nics[${j}].macvtap`;
        const dev = facts.nic(path);
        if (dev && !dev.name) emit.error(path, `${nicLabel(dev)} has no network interface`);
      });
    });
  }),
  rule(
    "vms.passthrough",
    "a passed-through device goes to one VM, bound at boot or detached at VM start",
    ({ answer, facts }, emit) => {
      const host = new Set(
        answer.passthrough.flatMap((_, i) => facts.pci(`passthrough[${i}].device`)?.address ?? []),
      );
      const claimed = new Map<string, { vm: number; path: string }>();
      answer.vms.forEach((vm, i) => {
        vm.passthrough?.forEach((_, j) => {
          const path = `vms[${i}].passthrough[${j}]`;
          const dev = facts.pci(path);
          if (!dev) return;
          const first = claimed.get(dev.address);
          if (first) {
            const other = first.vm === i ? "this VM" : `VM ${answer.vms[first.vm]?.name} (${first.path})`;
            emit.error(
              path,
              `${dev.address} is also passed through to ${other}: a device goes to one VM only`,
            );
            return;
          }
          claimed.set(dev.address, { vm: i, path });
          if (!host.has(dev.address))
            emit.warning(
              path,
              `${pciLabel(dev)} is not in passthrough: (which binds it to vfio-pci at boot); libvirt detaches it from its host driver when the VM starts`,
            );
        });
      });
    },
  ),
];
