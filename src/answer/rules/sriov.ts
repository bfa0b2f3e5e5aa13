// SR-IOV: the management NIC's VF count is never changed (a change resets the PF's link); a count
// fits sriov_totalvfs; a PF whose VFs are in view is capable even when its total was not captured.
import type { HostReport, NicReport, SriovInfo } from "../../detect/types.js";
import { nicLabel } from "../match.js";
import { type Rule, type RuleInput, rule } from "./types.js";

/**
 * What the host says about a PF's SR-IOV: its sriov info, the VFs seen pointing at it, and
 * sriov_totalvfs when detection read it (null: unknown, e.g. a snapshot that did not capture it;
 * detection then may give the visible VF count as a lower bound, flagged totalVfsKnown: false).
 */
export function sriovOf(
  report: HostReport,
  nic: NicReport,
): { info: SriovInfo | null; visibleVfs: string[]; total: number | null } {
  const pci = nic.pciAddress ? report.pci.find((p) => p.address === nic.pciAddress) : undefined;
  const info = nic.sriov ?? pci?.sriov ?? null;
  const visibleVfs = nic.pciAddress
    ? report.pci.filter((p) => p.physfn === nic.pciAddress).map((p) => p.address)
    : [];
  const known = info !== null && (info as { totalVfsKnown?: boolean }).totalVfsKnown !== false;
  return { info, visibleVfs, total: known ? (info?.totalVfs ?? null) : null };
}

const entries = ({ answer, facts }: RuleInput) =>
  answer.sriov.flatMap((entry, i) => {
    const nic = facts.nic(`sriov[${i}].pf`);
    return nic ? [{ entry, i, nic }] : [];
  });

export const sriovRules: Rule[] = [
  rule("sriov.management-pf", "the management NIC's VF count is never changed", (input, emit) => {
    for (const { i, nic } of entries(input))
      if (nic.management)
        emit.error(
          `sriov[${i}].pf`,
          `${nicLabel(nic)} is the management NIC (it carries the default route): changing its VF count resets its link and would cut this host off`,
          "create VFs on another PF, or move management to another NIC first",
        );
  }),
  rule(
    "sriov.capable",
    "the PF is SR-IOV capable (a PF with visible VFs is, total unknown)",
    (input, emit) => {
      for (const { i, nic } of entries(input)) {
        const { info, visibleVfs, total } = sriovOf(input.report, nic);
        if (!nic.name)
          emit.error(`sriov[${i}].pf`, `${nicLabel(nic)} has no network interface: its VFs cannot be set up`);
        else if (total === null && (info || visibleVfs.length))
          emit.warning(
            `sriov[${i}].pf`,
            `${nicLabel(nic)}'s sriov_totalvfs was not captured, but ${Math.max(visibleVfs.length, info?.totalVfs ?? 0)} VF(s) are visible: it is SR-IOV capable, its maximum is unknown`,
            "run detection on the live host to learn the maximum",
          );
        else if (!info)
          emit.error(`sriov[${i}].pf`, `${nicLabel(nic)} has no SR-IOV capability (no sriov_totalvfs)`);
      }
    },
  ),
  rule("sriov.total-vfs", "numVfs is at most the PF's sriov_totalvfs", (input, emit) => {
    for (const { entry, i, nic } of entries(input)) {
      const { total } = sriovOf(input.report, nic);
      if (total !== null && entry.numVfs > total)
        emit.error(
          `sriov[${i}].numVfs`,
          `${entry.numVfs} VFs requested but ${nicLabel(nic)} supports at most ${total} (sriov_totalvfs)`,
        );
    }
  }),
  rule("sriov.vf-index", "per-VF settings name VFs that exist", ({ answer }, emit) => {
    answer.sriov.forEach((s, i) => {
      s.vfs.forEach((vf, j) => {
        if (vf.index >= s.numVfs)
          emit.error(`sriov[${i}].vfs[${j}].index`, `VF ${vf.index} does not exist with numVfs ${s.numVfs}`);
      });
    });
  }),
  rule("sriov.duplicate-pf", "one sriov entry per PF", (input, emit) => {
    const seen = new Map<string, number>();
    for (const { i, nic } of entries(input)) {
      const key = nic.pciAddress ?? nicLabel(nic);
      const prior = seen.get(key);
      if (prior !== undefined)
        emit.error(`sriov[${i}].pf`, `${nicLabel(nic)} already has an entry (sriov[${prior}])`);
      else seen.set(key, i);
    }
  }),
];
