// A migration job's progress, read from `virsh domjobinfo` (the running job on the source, and
// `--completed` after it for the downtime libvirt measured). virsh prints "Key: value [unit]" lines
// with binary-prefixed sizes; LC_ALL=C keeps the decimal point a dot.

export interface JobInfo {
  /** "None", "Unbounded", "Completed", "Failed", "Cancelled". */
  type: string;
  operation: string | null;
  elapsedMs: number | null;
  processedBytes: number | null;
  remainingBytes: number | null;
  totalBytes: number | null;
  /** Completed jobs: the time the guest was paused. */
  downtimeMs: number | null;
  expectedDowntimeMs: number | null;
}

const UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
  ms: 1,
};

function quantity(v: string | undefined): number | null {
  const m = v?.trim().match(/^(-?[0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]+)?/);
  if (!m) return null;
  const f = m[2] ? UNITS[m[2].toLowerCase()] : 1;
  return f === undefined ? null : Math.round(Number(m[1]) * f);
}

export function parseJobInfo(text: string): JobInfo {
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) fields.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return {
    type: fields.get("job type") ?? "None",
    operation: fields.get("operation") ?? null,
    elapsedMs: quantity(fields.get("time elapsed")),
    processedBytes: quantity(fields.get("data processed")),
    remainingBytes: quantity(fields.get("data remaining")),
    totalBytes: quantity(fields.get("data total")),
    downtimeMs: quantity(fields.get("total downtime")),
    expectedDowntimeMs: quantity(fields.get("expected downtime")),
  };
}

/** Percent done by data (0-100), null when the job does not say. */
export function percentDone(j: JobInfo): number | null {
  if (!j.totalBytes || j.remainingBytes === null) return null;
  return Math.max(0, Math.min(100, Math.floor((100 * (j.totalBytes - j.remainingBytes)) / j.totalBytes)));
}

const mib = (b: number | null) => (b === null ? "?" : (b / 1024 ** 2).toFixed(1));

/** One progress line for a terminal (ASCII only). */
export function progressLine(vm: string, j: JobInfo): string {
  const pct = percentDone(j);
  const secs = j.elapsedMs === null ? "?" : (j.elapsedMs / 1000).toFixed(1);
  return `${vm}: ${pct === null ? "--" : `${pct}%`} ${mib(j.processedBytes)}/${mib(j.totalBytes)} MiB, ${secs} s`;
}

/** virDomainJobOperation's numbers, as the job-completed event's typed parameters carry them. */
const OPERATIONS: Record<string, string> = {
  "1": "Start",
  "2": "Save",
  "3": "Restore",
  "4": "Incoming migration",
  "5": "Outgoing migration",
};

/**
 * The completed job from `virsh event --event job-completed` ("\tname: value" lines of the event's
 * typed parameters: times in ms, data in bytes); null when the output carries no such event.
 */
export function parseJobCompletedEvent(text: string): JobInfo | null {
  if (!/event 'job-completed'/.test(text)) return null;
  const fields = new Map<string, string>();
  for (const m of text.matchAll(/^\s+([a-z_.]+): (.*)$/gm))
    fields.set(m[1] as string, (m[2] as string).trim());
  const num = (k: string) => {
    const v = fields.get(k);
    return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null;
  };
  return {
    type: "Completed",
    operation: OPERATIONS[fields.get("operation") ?? ""] ?? null,
    elapsedMs: num("time_elapsed"),
    processedBytes: num("data_processed"),
    remainingBytes: num("data_remaining"),
    totalBytes: num("data_total"),
    downtimeMs: num("downtime"),
    expectedDowntimeMs: null,
  };
}
