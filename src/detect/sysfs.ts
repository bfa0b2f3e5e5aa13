// Small readers shared by the detectors: they turn sysfs/procfs text into typed values and record
// the path each value came from, so every fact in the report can say where it was read.
import type { HostFs } from "../host/fs.js";
import type { Sources, Warning } from "./types.js";

export interface DetectContext {
  fs: HostFs;
  warnings: Warning[];
}

/** Records where a field came from and returns the trimmed text, or null. */
export async function readAttr(
  ctx: DetectContext,
  sources: Sources,
  field: string,
  path: string,
): Promise<string | null> {
  const text = await ctx.fs.readText(path);
  if (text === null) return null;
  sources[field] = path;
  return text.trim();
}

export function parseIntStrict(text: string | null, radix = 10): number | null {
  if (text === null) return null;
  const t = text.trim();
  const ok = radix === 16 ? /^(0x)?[0-9a-f]+$/i.test(t) : /^-?\d+$/.test(t);
  if (!ok) return null;
  return Number.parseInt(t, radix);
}

/** Parses a number and warns, naming the file, when the content is malformed. */
export function intOrWarn(ctx: DetectContext, path: string, text: string | null, radix = 10): number | null {
  if (text === null) return null;
  const n = parseIntStrict(text, radix);
  if (n === null)
    ctx.warnings.push({ path, message: `expected a number, found ${JSON.stringify(text.slice(0, 40))}` });
  return n;
}

/** Expands a kernel cpulist ("0-3,8,10-11") into CPU numbers; null when malformed. */
export function parseCpuList(text: string | null): number[] | null {
  if (text === null) return null;
  const t = text.trim();
  if (t === "") return [];
  const out: number[] = [];
  for (const part of t.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b - a > 65536) return null;
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/** "0x8086\n" -> "8086"; null when it is not a hex id. */
export function hexId(text: string | null, width = 4): string | null {
  if (text === null) return null;
  const m = /^0x([0-9a-f]+)$/i.exec(text.trim());
  return m?.[1] ? m[1].toLowerCase().padStart(width, "0") : null;
}

export function basename(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? p : p.slice(i + 1);
}

/** Parses "KEY=value" lines (uevent files). */
export function parseKeyValues(text: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!text) return out;
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Parses /proc/mounts lines into device, mountpoint, fstype; unescapes \040 and friends. */
export function parseMounts(text: string | null): { device: string; mountpoint: string; fstype: string }[] {
  if (!text) return [];
  const unescapeOctal = (s: string) =>
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  const out: { device: string; mountpoint: string; fstype: string }[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    if (f.length >= 3 && f[0] && f[1] && f[2])
      out.push({ device: unescapeOctal(f[0]), mountpoint: unescapeOctal(f[1]), fstype: f[2] });
  }
  return out;
}

/** Byte-order comparison; localeCompare would load ICU collation, costing ~8 ms on a cold start. */
export const compareText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** "eth2" before "eth10": runs of digits compare as numbers. */
export function compareNatural(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const x = ta[i] as string;
    const y = tb[i] as string;
    if (x === y) continue;
    const nx = /^\d/.test(x) && /^\d/.test(y);
    return nx ? Number(x) - Number(y) || compareText(x, y) : compareText(x, y);
  }
  return ta.length - tb.length;
}
