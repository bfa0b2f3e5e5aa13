// Facts the rules share, computed once per run: every match rule's result (by key path), the
// management NICs, the controllers of the disks the host runs from, and which PCI functions are GPUs
// or bridges. Pure: derived from the answer and the report only.
import type { DiskReport, HostReport, NicReport, PciDevice } from "../../detect/types.js";
import { type MatchResult, matchDisks, matchNics, matchPci, nicCandidates, nicLabel } from "../match.js";
import { collectRules, type MatchRule } from "../match-rules.js";
import type { Answer } from "../schema.js";

export type AnyMatch =
  | { kind: "nic"; path: string; result: MatchResult<NicReport> }
  | { kind: "disk"; path: string; result: MatchResult<DiskReport> }
  | { kind: "pci"; path: string; result: MatchResult<PciDevice> };

export interface Facts {
  matches: AnyMatch[];
  /** The NIC a NIC rule at this path chose (null: an error, reported by the match rule). */
  nic: (path: string) => NicReport | null;
  disk: (path: string) => DiskReport | null;
  pci: (path: string) => PciDevice | null;
  pciByAddress: ReadonlyMap<string, PciDevice>;
  /** Management NICs (default route) by PCI address. */
  managementByPci: ReadonlyMap<string, NicReport>;
  /** Controllers of disks holding root, /boot, the ESP, the boot medium or swap, by PCI address. */
  bootControllers: ReadonlyMap<string, DiskReport>;
  gpus: PciDevice[];
}

export const isPciBridge = (d: PciDevice | undefined | null) => /^060[04]/.test(d?.classId ?? "");
export const isGpu = (d: PciDevice) => (d.classId ?? "").startsWith("03");

/** A stable key for one NIC: its PCI function, else its name. */
export const nicKey = (n: NicReport) => n.pciAddress ?? nicLabel(n);

function matchOne(r: MatchRule, report: HostReport): AnyMatch {
  if (r.kind === "nic") return { kind: "nic", path: r.path, result: matchNics(r.rule, report) };
  if (r.kind === "disk") return { kind: "disk", path: r.path, result: matchDisks(r.rule, report) };
  return { kind: "pci", path: r.path, result: matchPci(r.rule, report) };
}

export function gatherFacts(answer: Answer, report: HostReport): Facts {
  const matches = collectRules(answer).map((r) => matchOne(r, report));
  const byPath = new Map(matches.map((m) => [m.path, m]));
  const chosen = <K extends AnyMatch["kind"]>(kind: K, path: string) => {
    const m = byPath.get(path);
    if (!m || m.kind !== kind || m.result.error) return null;
    return (m.result.chosen[0] ?? null) as Extract<AnyMatch, { kind: K }>["result"]["chosen"][number] | null;
  };
  const managementByPci = new Map(
    nicCandidates(report)
      .filter((n) => n.management && n.pciAddress)
      .map((n): [string, NicReport] => [n.pciAddress as string, n]),
  );
  const bootControllers = new Map<string, DiskReport>();
  for (const d of report.disks) if (d.pciAddress && d.roles.length) bootControllers.set(d.pciAddress, d);
  return {
    matches,
    nic: (path) => chosen("nic", path),
    disk: (path) => chosen("disk", path),
    pci: (path) => chosen("pci", path),
    pciByAddress: new Map(report.pci.map((p) => [p.address, p])),
    managementByPci,
    bootControllers,
    gpus: report.pci.filter(isGpu),
  };
}
