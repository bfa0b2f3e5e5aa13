// View models: everything the screens show, computed once from the host report so a keypress only
// re-renders (never re-detects or re-checks). No decisions of its own: verdicts come from checks/,
// and whether a device, a disk, a PF or a bond member may be used comes from the rule set
// (src/answer/rules), asked about the very draft the choice would make, as validate and plan see it.
import { formatSize, nicCandidates, nicLabel, pciLabel } from "../answer/match.js";
import {
  diskFindingsFor,
  type Finding,
  findingsForDraft,
  passthroughFindingsFor,
  sriovOf,
} from "../answer/rules/index.js";
import type { DiskMatch, NicMatch } from "../answer/schema.js";
import { type Check, runChecks, verdict } from "../checks/index.js";
import type { DiskReport, HostReport, NicReport, PciDevice } from "../detect/types.js";
import { type Draft, withBonds, withBridge } from "./draft.js";
import { hardwareItems } from "./hardware.js";

export interface Item {
  label: string;
  level: Check["level"] | null;
  detail: string[];
}

export interface NicRow {
  nic: NicReport;
  label: string;
  rule: NicMatch;
  management: boolean;
}

export interface PfRow extends NicRow {
  /** null: the snapshot did not capture sriov_totalvfs (the PF's VFs are visible). */
  totalVfs: number | null;
  numVfs: number;
}

export interface DiskRow {
  disk: DiskReport;
  label: string;
  /** Why the disk cannot join a pool that keeps its content (null: it can). */
  exclusion: string | null;
  /** Why the disk cannot join a pool that wipes it (null: it can). */
  wipeExclusion: string | null;
  rule: DiskMatch | null;
  /** What the operator types before a wipe: the serial, or the by-id name without one. */
  confirm: string | null;
}

export interface DevRow {
  dev: PciDevice;
  label: string;
  bridge: boolean;
  obstacle: string | null;
  /** What the rules warn about when this device is passed through (e.g. the boot VGA), or null. */
  warning: string | null;
}

export interface GroupRow {
  id: number | null;
  devices: DevRow[];
  /** Why the group cannot be given to a guest as a whole, or null. */
  blocker: string | null;
}

export const CATEGORIES = ["CPU/KVM", "IOMMU", "NICs", "PCI", "Disks", "Checks"] as const;
export type Category = (typeof CATEGORIES)[number];

export interface HostModel {
  report: HostReport;
  checks: Check[];
  verdict: ReturnType<typeof verdict>;
  hardware: Record<Category, Item[]>;
  nics: NicRow[];
  pfs: PfRow[];
  disks: DiskRow[];
  groups: GroupRow[];
}

export function nicRule(n: NicReport): NicMatch {
  if (n.name) return { name: n.name };
  if (n.pciAddress) return { pci: n.pciAddress };
  return n.mac ? { mac: n.mac } : {};
}

function diskRule(d: DiskReport): DiskMatch | null {
  const byId = d.byId.find((b) => /\/(wwn-|nvme-eui)/.test(b)) ?? d.byId[0];
  if (byId) return { byId: byId.replace(/^\/dev\/disk\/by-id\//, "") };
  return d.serial ? { serial: d.serial } : null;
}

const isBridge = (d: PciDevice) => /^060[04]/.test(d.classId ?? "");

const firstError = (findings: Finding[], keep: (f: Finding) => boolean = () => true) =>
  findings.find((f) => f.level === "error" && keep(f))?.message ?? null;

/** Everything the rules say about picking one device, except that its group must come along. */
const ofDevice = (f: Finding) => f.ruleId !== "passthrough.group-incomplete";

/** What the rules say about this device alone (its group's completeness aside: the TUI picks groups). */
export const deviceObstacle = (report: HostReport, address: string): string | null =>
  firstError(passthroughFindingsFor(report, [address]), ofDevice);

/** What the rules say about passing these endpoints through together (a whole group). */
export const groupObstacle = (report: HostReport, addresses: readonly string[]): string | null =>
  addresses.length ? firstError(passthroughFindingsFor(report, addresses)) : null;

/** The first error a choice adds to the draft (wherever the rules put it), or null. */
function problemAdded(report: HostReport, before: Draft, after: Draft): string | null {
  const key = (f: Finding) => `${f.ruleId} ${f.path} ${f.message}`;
  const had = new Set(findingsForDraft(before, report).map(key));
  return firstError(findingsForDraft(after, report), (f) => !had.has(key(f)));
}

/** Why this NIC cannot join a new bond in the draft, or null. */
export function bondMemberProblem(report: HostReport, draft: Draft, rule: NicMatch): string | null {
  const bonds = draft.network?.bonds ?? [];
  const taken = new Set([...bonds.map((b) => b.name), ...(draft.network?.bridges ?? []).map((b) => b.name)]);
  let i = bonds.length;
  while (taken.has(`bond${i}`)) i++;
  const probe = withBonds(draft, [...bonds, { name: `bond${i}`, mode: "active-backup", interfaces: [rule] }]);
  return problemAdded(report, draft, probe);
}

/** Why this NIC cannot be the first bridge's uplink in the draft, or null. */
export function uplinkProblem(report: HostReport, draft: Draft, rule: NicMatch): string | null {
  const bridge = draft.network?.bridges?.[0] ?? { name: "br0", addresses: "dhcp" as const };
  return problemAdded(report, draft, withBridge(draft, { ...bridge, uplink: rule }));
}

/** Why this PF cannot have `numVfs` VFs (a draft with only that sriov entry), or null. */
export function sriovProblem(report: HostReport, rule: NicMatch, numVfs: number): string | null {
  return firstError(findingsForDraft({ version: 1, sriov: [{ pf: rule, numVfs }] }, report));
}

export function buildModel(report: HostReport): HostModel {
  const checks = runChecks(report);
  const { iommu } = report;
  const devRow = (d: PciDevice): DevRow => {
    const findings = passthroughFindingsFor(report, [d.address]).filter(ofDevice);
    return {
      dev: d,
      label: pciLabel(d),
      bridge: isBridge(d),
      obstacle: firstError(findings),
      warning: findings.find((f) => f.level === "warning")?.message ?? null,
    };
  };
  const grouped = new Set<string>();
  const groups: GroupRow[] = [...iommu.groups]
    .sort((a, b) => a.id - b.id)
    .map((g) => {
      const devices = g.devices.flatMap((a) => report.pci.filter((p) => p.address === a)).map(devRow);
      for (const d of devices) grouped.add(d.dev.address);
      const endpoints = devices.filter((d) => !d.bridge).map((d) => d.dev.address);
      return { id: g.id, devices, blocker: groupObstacle(report, endpoints) };
    });
  const loose = report.pci.filter((p) => !grouped.has(p.address)).map(devRow);
  if (loose.length) groups.push({ id: null, devices: loose, blocker: null });
  const nics = nicCandidates(report).map((n) => ({
    nic: n,
    label: `${nicLabel(n)}${n.pciAddress && n.name ? ` @ ${n.pciAddress}` : ""}${n.speedMbps ? ` ${n.speedMbps} Mb/s` : ""}`,
    rule: nicRule(n),
    management: n.management,
  }));
  const pfs: PfRow[] = nics.flatMap((r): PfRow[] => {
    const { info, visibleVfs, total } = sriovOf(report, r.nic);
    const numVfs = info?.numVfs ?? visibleVfs.length;
    if (total !== null) return total > 0 ? [{ ...r, totalVfs: total, numVfs }] : [];
    return info || visibleVfs.length ? [{ ...r, totalVfs: null, numVfs }] : [];
  });
  const disks = report.disks
    .filter((d) => !d.virtual)
    .map((d) => {
      const rule = diskRule(d);
      const unnamed = "no by-id link or serial to name it safely";
      const why = (wipe: boolean) => (rule ? firstError(diskFindingsFor(report, rule, wipe)) : unnamed);
      return {
        disk: d,
        label: `${d.name} ${d.sizeBytes !== null ? formatSize(d.sizeBytes) : "?"} ${d.model ?? ""}`.trim(),
        exclusion: why(false),
        wipeExclusion: why(true),
        rule,
        confirm: d.serial ?? rule?.byId ?? null,
      };
    });
  return {
    report,
    checks,
    verdict: verdict(checks),
    hardware: hardwareItems(report, checks),
    nics,
    pfs,
    disks,
    groups,
  };
}
