// View models: everything the screens show, computed once from the host report so a keypress only
// re-renders (never re-detects or re-checks). No decisions of its own: verdicts come from checks/,
// disk exclusions from checks/resources, passthrough obstacles from plan/passthrough-plan.
import { formatSize, nicCandidates, nicLabel, pciLabel } from "../answer/match.js";
import { answerSchema, type DiskMatch, type NicMatch } from "../answer/schema.js";
import { type Check, runChecks, verdict } from "../checks/index.js";
import { diskExclusion } from "../checks/resources.js";
import type { DiskReport, HostReport, NicReport, PciDevice } from "../detect/types.js";
import { passthroughObstacle } from "../plan/passthrough-plan.js";
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
  totalVfs: number;
  numVfs: number;
}

export interface DiskRow {
  disk: DiskReport;
  label: string;
  exclusion: string | null;
  rule: DiskMatch | null;
  /** What the operator types before a wipe: the serial, or the by-id name without one. */
  confirm: string | null;
}

export interface DevRow {
  dev: PciDevice;
  label: string;
  bridge: boolean;
  obstacle: string | null;
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

export function buildModel(report: HostReport): HostModel {
  const checks = runChecks(report);
  const { iommu } = report;
  const ctx = {
    report,
    answer: answerSchema.parse({ version: 1 }),
    current: new Map(),
    actions: [],
    refusals: [],
  };
  const devRow = (d: PciDevice): DevRow => ({
    dev: d,
    label: pciLabel(d),
    bridge: isBridge(d),
    obstacle: passthroughObstacle(ctx, d),
  });
  const grouped = new Set<string>();
  const groups: GroupRow[] = [...iommu.groups]
    .sort((a, b) => a.id - b.id)
    .map((g) => {
      const devices = g.devices.flatMap((a) => report.pci.filter((p) => p.address === a)).map(devRow);
      for (const d of devices) grouped.add(d.dev.address);
      const stop = devices.find((d) => !d.bridge && d.obstacle);
      return { id: g.id, devices, blocker: stop ? (stop.obstacle ?? null) : null };
    });
  const loose = report.pci.filter((p) => !grouped.has(p.address)).map(devRow);
  if (loose.length) groups.push({ id: null, devices: loose, blocker: null });
  const nics = nicCandidates(report).map((n) => ({
    nic: n,
    label: `${nicLabel(n)}${n.pciAddress && n.name ? ` @ ${n.pciAddress}` : ""}${n.speedMbps ? ` ${n.speedMbps} Mb/s` : ""}`,
    rule: nicRule(n),
    management: n.management,
  }));
  const pciSriov = new Map(report.pci.map((p) => [p.address, p.sriov]));
  const pfs: PfRow[] = nics.flatMap((r) => {
    const s = r.nic.sriov ?? (r.nic.pciAddress ? pciSriov.get(r.nic.pciAddress) : null) ?? null;
    return s && s.totalVfs > 0 && !r.nic.virtual ? [{ ...r, totalVfs: s.totalVfs, numVfs: s.numVfs }] : [];
  });
  const disks = report.disks
    .filter((d) => !d.virtual)
    .map((d) => ({
      disk: d,
      label: `${d.name} ${d.sizeBytes !== null ? formatSize(d.sizeBytes) : "?"} ${d.model ?? ""}`.trim(),
      exclusion: diskExclusion(d) ?? (diskRule(d) ? null : "no by-id link or serial to name it safely"),
      rule: diskRule(d),
      confirm: d.serial ?? diskRule(d)?.byId ?? null,
    }));
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
