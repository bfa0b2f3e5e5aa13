// Match rules against a host report. Every candidate gets one reason per criterion, matched or not,
// so `kvmstrap answer explain` can say why a rule picked what it picked. Pure: no I/O.
import type { DiskReport, HostReport, NicReport, PciDevice } from "../detect/types.js";
import type { DiskMatch, NicMatch, PciMatch } from "./schema.js";
import { formatSize, globMatch, normalizePci, parseSize } from "./units.js";

export { formatSize, globMatch, normalizePci, parseSize };

export interface Candidate<T> {
  item: T;
  label: string;
  matched: boolean;
  /** One per criterion, whether it held or not. */
  reasons: string[];
  /** The reasons that did not hold. */
  failed: string[];
}

export interface MatchResult<T> {
  chosen: T[];
  candidates: Candidate<T>[];
  error: string | null;
}

type Check = [ok: boolean, reason: string];
type Pick = NonNullable<NicMatch["pick"]>;

const MAX_LISTED = 8;

const natural = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });

function decide<T>(
  kind: string,
  candidates: Candidate<T>[],
  pick: Pick | undefined,
  allowed: Pick[],
  order: Record<string, (a: T, b: T) => number>,
): MatchResult<T> {
  const hits = candidates.filter((c) => c.matched);
  const list = (cs: Candidate<T>[]) => {
    const nearest = [...cs].sort((a, b) => a.failed.length - b.failed.length);
    const shown = nearest.slice(0, MAX_LISTED).map((c) => `${c.label}: ${c.failed.join("; ")}`);
    const more = cs.length - shown.length;
    return more > 0 ? [...shown, `(${more} more: kvmstrap answer explain lists them all)`] : shown;
  };
  if (pick && !allowed.includes(pick)) {
    return {
      chosen: [],
      candidates,
      error: `pick: ${pick} does not apply to ${kind}s (use ${allowed.join(", ")})`,
    };
  }
  if (!hits.length) {
    const detail = candidates.length
      ? `; candidates:\n  ${list(candidates).join("\n  ")}`
      : ` (this host has no ${kind}s)`;
    return { chosen: [], candidates, error: `no ${kind} matches${detail}` };
  }
  if (hits.length === 1) return { chosen: [hits[0]?.item as T], candidates, error: null };
  if (!pick) {
    return {
      chosen: [],
      candidates,
      error: `${hits.length} ${kind}s match (${hits.map((c) => c.label).join(", ")}): add a criterion or pick: ${allowed.join("|")}`,
    };
  }
  const sorted = hits.map((c) => c.item).sort(order[pick] ?? (() => 0));
  return { chosen: [sorted[0] as T], candidates, error: null };
}

function candidate<T>(item: T, label: string, checks: Check[]): Candidate<T> {
  // One pass, no intermediate arrays: a rule set run builds this for every device of the host.
  const reasons: string[] = [];
  const failed: string[] = [];
  for (const [ok, r] of checks) {
    reasons.push(r);
    if (!ok) failed.push(r);
  }
  if (!checks.length) reasons.push("no criteria: everything matches");
  return { item, label, matched: failed.length === 0, reasons, failed };
}

// ---- NICs ---------------------------------------------------------------------------------------

/** Physical NICs, without SR-IOV VFs (the sriov section creates those; they are not matched). */
export function nicCandidates(report: HostReport): NicReport[] {
  const vfs = new Set(report.pci.filter((p) => p.physfn).map((p) => p.address));
  return report.nics.filter((n) => !n.virtual && !(n.pciAddress && vfs.has(n.pciAddress)));
}

export const nicLabel = (n: NicReport) => n.name ?? n.pciAddress ?? "(unnamed NIC)";

export function matchNics(rule: NicMatch, report: HostReport): MatchResult<NicReport> {
  const pci = new Map(report.pci.map((p) => [p.address, p]));
  const candidates = nicCandidates(report).map((n) => {
    const c: Check[] = [];
    const name = n.name ?? "(no interface)";
    if (rule.name !== undefined)
      c.push(
        n.name !== null && globMatch(rule.name, n.name)
          ? [true, `name ${name} matches ${rule.name}`]
          : [false, `name ${name} does not match ${rule.name}`],
      );
    if (rule.mac !== undefined)
      c.push(
        n.mac === null
          ? [false, "MAC unknown"]
          : [
              n.mac.toLowerCase() === rule.mac.toLowerCase(),
              `mac ${n.mac} ${eq(n.mac.toLowerCase(), rule.mac.toLowerCase())} ${rule.mac}`,
            ],
      );
    if (rule.driver !== undefined)
      c.push(
        n.driver === null
          ? [false, "driver unknown"]
          : [n.driver === rule.driver, `driver ${n.driver} ${eq(n.driver, rule.driver)} ${rule.driver}`],
      );
    if (rule.pci !== undefined) {
      const want = normalizePci(rule.pci);
      c.push(
        n.pciAddress === null
          ? [false, "not a PCI device"]
          : [n.pciAddress === want, `pci ${n.pciAddress} ${eq(n.pciAddress, want)} ${want}`],
      );
    }
    if (rule.vendor !== undefined) {
      const v = n.pciAddress ? (pci.get(n.pciAddress)?.vendorId ?? null) : null;
      const want = rule.vendor.toLowerCase();
      c.push(v === null ? [false, "vendor unknown"] : [v === want, `vendor ${v} ${eq(v, want)} ${want}`]);
    }
    if (rule.minSpeedMbps !== undefined)
      c.push(
        n.speedMbps === null || n.speedMbps < 0
          ? [false, "speed unknown (no link?)"]
          : n.speedMbps >= rule.minSpeedMbps
            ? [true, `speed ${n.speedMbps} Mb/s >= minSpeedMbps ${rule.minSpeedMbps}`]
            : [false, `speed ${n.speedMbps} Mb/s < minSpeedMbps ${rule.minSpeedMbps}`],
      );
    if (rule.uplink)
      c.push(
        n.management
          ? [true, "carries the default route"]
          : n.defaultRoute === "unknown"
            ? [false, "may carry the default route: no route table was captured"]
            : [false, "does not carry the default route"],
      );
    return candidate(n, nicLabel(n), c);
  });
  const byName = (a: NicReport, b: NicReport) => natural(nicLabel(a), nicLabel(b));
  return decide("NIC", candidates, rule.pick, ["first", "last", "fastest"], {
    first: byName,
    last: (a, b) => byName(b, a),
    fastest: (a, b) => (b.speedMbps ?? -1) - (a.speedMbps ?? -1) || byName(a, b),
  });
}

const eq = (a: string, b: string) => (a === b ? "==" : "!=");

// ---- Disks --------------------------------------------------------------------------------------

export const diskCandidates = (report: HostReport) => report.disks.filter((d) => !d.virtual);

export function diskLabel(d: DiskReport): string {
  const bits = [
    d.sizeBytes !== null ? formatSize(d.sizeBytes) : null,
    d.model,
    d.serial ? `serial ${d.serial}` : null,
  ];
  return `${d.name} (${bits.filter(Boolean).join(", ") || "unknown disk"})`;
}

const stripById = (s: string) => s.replace(/^\/dev\/disk\/by-id\//, "");

export function matchDisks(rule: DiskMatch, report: HostReport): MatchResult<DiskReport> {
  const min = rule.minSize !== undefined ? parseSize(rule.minSize) : null;
  const max = rule.maxSize !== undefined ? parseSize(rule.maxSize) : null;
  const candidates = diskCandidates(report).map((d) => {
    const c: Check[] = [];
    if (rule.byId !== undefined) {
      const want = stripById(rule.byId);
      const ids = d.byId.map(stripById);
      c.push(
        ids.includes(want)
          ? [true, `by-id ${want} links to it`]
          : [false, `no by-id link ${want}${ids.length ? ` (has ${ids.join(", ")})` : ""}`],
      );
    }
    if (rule.serial !== undefined)
      c.push(
        d.serial === null
          ? [false, "serial unknown"]
          : [
              d.serial.trim() === rule.serial.trim(),
              `serial ${d.serial} ${eq(d.serial.trim(), rule.serial.trim())} ${rule.serial}`,
            ],
      );
    if (rule.wwn !== undefined)
      c.push(
        d.wwn === null
          ? [false, "WWN unknown"]
          : [
              d.wwn.trim().toLowerCase() === rule.wwn.trim().toLowerCase(),
              `wwn ${d.wwn} ${eq(d.wwn.trim().toLowerCase(), rule.wwn.trim().toLowerCase())} ${rule.wwn}`,
            ],
      );
    if (rule.model !== undefined)
      c.push(
        d.model === null
          ? [false, "model unknown"]
          : globMatch(rule.model, d.model.trim(), true)
            ? [true, `model "${d.model}" matches ${rule.model}`]
            : [false, `model "${d.model}" does not match ${rule.model}`],
      );
    const size = d.sizeBytes;
    if (min !== null || max !== null) {
      if (size === null) c.push([false, "size unknown"]);
      else {
        if (min !== null)
          c.push([
            size >= min,
            `size ${formatSize(size)} ${size >= min ? ">=" : "<"} minSize ${rule.minSize}`,
          ]);
        if (max !== null)
          c.push([
            size <= max,
            `size ${formatSize(size)} ${size <= max ? "<=" : ">"} maxSize ${rule.maxSize}`,
          ]);
      }
    }
    if (rule.rotational !== undefined) {
      const kind = (r: boolean) => (r ? "rotational (HDD)" : "non-rotational (SSD)");
      c.push(
        d.rotational === null
          ? [false, "rotational unknown"]
          : [
              d.rotational === rule.rotational,
              `${kind(d.rotational)}${d.rotational === rule.rotational ? "" : `, wanted ${kind(rule.rotational)}`}`,
            ],
      );
    }
    return candidate(d, diskLabel(d), c);
  });
  let pick = rule.pick;
  if (rule.largest) {
    if (pick && pick !== "largest")
      return { chosen: [], candidates, error: `largest: true conflicts with pick: ${pick}` };
    pick = "largest";
  }
  const byName = (a: DiskReport, b: DiskReport) => natural(a.name, b.name);
  return decide("disk", candidates, pick, ["first", "last", "largest", "smallest"], {
    first: byName,
    last: (a, b) => byName(b, a),
    largest: (a, b) => (b.sizeBytes ?? -1) - (a.sizeBytes ?? -1) || byName(a, b),
    smallest: (a, b) =>
      (a.sizeBytes ?? Number.MAX_SAFE_INTEGER) - (b.sizeBytes ?? Number.MAX_SAFE_INTEGER) || byName(a, b),
  });
}

// ---- PCI ----------------------------------------------------------------------------------------

export function pciLabel(p: PciDevice): string {
  const name =
    p.vendorName && p.deviceName ? `${p.vendorName} ${p.deviceName}` : p.vendorName || p.deviceName || "";
  const cls = p.classId ? ` [${p.classId.slice(0, 4)}]` : "";
  return `${p.address} ${p.vendorId ?? "?"}:${p.deviceId ?? "?"}${cls}${name ? ` ${name}` : ""}${p.driver ? ` (${p.driver})` : ""}`;
}

export function matchPci(rule: PciMatch, report: HostReport): MatchResult<PciDevice> {
  const candidates = report.pci.map((p) => {
    const c: Check[] = [];
    if (rule.address !== undefined) {
      const want = normalizePci(rule.address);
      c.push([p.address === want, `address ${p.address} ${eq(p.address, want)} ${want}`]);
    }
    if (rule.id !== undefined) {
      const id = `${p.vendorId ?? "?"}:${p.deviceId ?? "?"}`;
      const want = rule.id.toLowerCase();
      c.push([id === want, `id ${id} ${eq(id, want)} ${want}`]);
    }
    if (rule.class !== undefined) {
      const want = rule.class.toLowerCase().replace(/^0x/, "");
      c.push(
        p.classId === null
          ? [false, "class unknown"]
          : p.classId.startsWith(want)
            ? [true, `class ${p.classId} starts with ${want}`]
            : [false, `class ${p.classId} does not start with ${want}`],
      );
    }
    return candidate(p, pciLabel(p), c);
  });
  const byAddress = (a: PciDevice, b: PciDevice) => natural(a.address, b.address);
  return decide("PCI device", candidates, rule.pick, ["first", "last"], {
    first: byAddress,
    last: (a, b) => byAddress(b, a),
  });
}
