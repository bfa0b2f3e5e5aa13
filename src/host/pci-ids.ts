// Names for PCI vendor, device and class ids, looked up in the pci.ids database of the machine running
// kvmstrap (not the target root: names are a presentation aid, never a fact about the target host).
// The 1.3 MB file is read once per process as one string and searched on demand (indexOf for a vendor,
// binary search within its block for a device); parsing it into maps would cost far more than the few
// dozen lookups a whole host needs.
import { readFile } from "node:fs/promises";

export interface PciIds {
  vendor(v: string): string | null;
  device(v: string, d: string): string | null;
  /** "020000" (class, subclass, prog-if), "0200" or "02": the subclass name, else the class name. */
  className(classId: string): string | null;
}

export const DEFAULT_PCI_IDS_PATHS = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"];

const HEX4 = /^[0-9a-f]{4}$/;
const HEX2 = /^[0-9a-f]{2}$/;

/**
 * Lookups over the text of a pci.ids file. Exported for tests that feed a small database.
 * pci.ids keeps vendors, and the devices of each vendor, in ascending id order, so a device is found by
 * binary search over the character offsets of its vendor's block (whose end one native regex scan finds):
 * a handful of short scans instead of walking Intel's 370 kB of device and subsystem lines in JavaScript.
 */
export class PciIdsText implements PciIds {
  /** Searched text: latin1 when built from bytes, so offsets are byte offsets into `bytes`. */
  private readonly text: string;
  private readonly bytes: Buffer | null;
  /** Start of the "C xx" class section; vendors and devices are searched only before it. */
  private readonly classStart: number;
  private readonly memo = new Map<string, string | null>();
  private readonly headers = new Map<string, number>();

  constructor(data: string | Buffer) {
    this.bytes = typeof data === "string" ? null : data;
    this.text = typeof data === "string" ? data : data.toString("latin1");
    // The class section is the last 200 lines of a 36,000-line file: find it from the end.
    const last = this.text.lastIndexOf("\nC 00  ");
    const c = last >= 0 ? last : this.text.indexOf("\nC ");
    this.classStart = c < 0 ? this.text.length : c;
  }

  vendor(v: string): string | null {
    const id = v.toLowerCase();
    if (!HEX4.test(id)) return null;
    return this.cached(`v${id}`, () => {
      const at = this.header(`\n${id}  `, 0, this.classStart);
      return at < 0 ? null : this.lineRest(at);
    });
  }

  device(v: string, d: string): string | null {
    const vid = v.toLowerCase();
    const did = d.toLowerCase();
    if (!HEX4.test(vid) || !HEX4.test(did)) return null;
    return this.cached(`d${vid}:${did}`, () => {
      const at = this.header(`\n${vid}  `, 0, this.classStart);
      return at < 0 ? null : this.child(at, this.blockEnd(at, /\n[0-9a-f]{4} {2}/g, this.classStart), did);
    });
  }

  className(classId: string): string | null {
    const id = classId.toLowerCase().replace(/^0x/, "");
    if (!/^[0-9a-f]{2}(?:[0-9a-f]{2}){0,2}$/.test(id)) return null;
    return this.cached(`c${id}`, () => {
      const base = id.slice(0, 2);
      const sub = id.slice(2, 4);
      const at = this.header(`\nC ${base}  `, Math.max(0, this.classStart - 1), this.text.length);
      if (at < 0) return null;
      // The subclass name ("Ethernet controller") is what lspci shows; the prog-if is left out.
      const end = this.blockEnd(at, /\nC [0-9a-f]{2} {2}/g, this.text.length);
      return (HEX2.test(sub) ? this.child(at, end, sub) : null) ?? this.lineRest(at);
    });
  }

  private cached(key: string, compute: () => string | null): string | null {
    if (this.memo.has(key)) return this.memo.get(key) ?? null;
    const value = compute();
    this.memo.set(key, value);
    return value;
  }

  /** Offset just after a top-level header ("\n8086  ") found in [from, to), or -1. Memoized. */
  private header(needle: string, from: number, to: number): number {
    const known = this.headers.get(needle);
    if (known !== undefined) return known;
    let at: number;
    if (from === 0 && this.text.startsWith(needle.slice(1))) at = needle.length - 1;
    else {
      const i = this.text.indexOf(needle, from);
      at = i >= 0 && i < to ? i + needle.length : -1;
    }
    this.headers.set(needle, at);
    return at;
  }

  /** Offset of the next top-level header matching `re` after `start` (a native regex scan), else `limit`. */
  private blockEnd(start: number, re: RegExp, limit: number): number {
    const key = `e${start}`;
    const known = this.headers.get(key);
    if (known !== undefined) return known;
    re.lastIndex = start;
    const m = re.exec(this.text);
    const end = m && m.index < limit ? m.index : limit;
    this.headers.set(key, end);
    return end;
  }

  /**
   * The first line that matters at or after offset p: a child line (one tab: a device or subclass) or a
   * top-level line (the next vendor or class, which ends the block). Comments, blank lines and two-tab
   * lines (subsystems, prog-ifs) are skipped. Returns the offset of the newline before it.
   */
  private probe(p: number): { nl: number; child: boolean } {
    const t = this.text;
    let q = p;
    for (;;) {
      const nl = t.indexOf("\n", q);
      if (nl < 0) return { nl: t.length, child: false };
      const c = t.charCodeAt(nl + 1);
      if (c === 9 /* tab */) {
        if (t.charCodeAt(nl + 2) !== 9) return { nl, child: true };
      } else if (c !== 35 /* # */ && c !== 10 /* newline */) {
        return { nl, child: false };
      }
      q = nl + 1;
    }
  }

  /** Binary search for the child line `id` of the block [start, limit). */
  private child(start: number, limit: number, id: string): string | null {
    let lo = start;
    let hi = limit;
    // Invariant: the wanted line, if present, begins with a newline at an offset in [lo, hi).
    while (lo < hi) {
      const mid = lo + ((hi - lo) >>> 1);
      const line = this.probe(mid);
      if (!line.child || line.nl >= hi) {
        hi = mid;
        continue;
      }
      const sep = this.text.indexOf("  ", line.nl + 2);
      const key = this.text.slice(line.nl + 2, sep < 0 ? line.nl + 2 : sep);
      if (key === id) return this.lineRest(sep + 2);
      if (key < id) lo = line.nl + 1;
      else hi = mid;
    }
    return null;
  }

  /** The rest of the line from an offset, trimmed; decoded as UTF-8 when the source was bytes. */
  private lineRest(from: number): string | null {
    const nl = this.text.indexOf("\n", from);
    const end = nl < 0 ? this.text.length : nl;
    const s = (this.bytes ? this.bytes.toString("utf8", from, end) : this.text.slice(from, end)).trim();
    return s === "" ? null : s;
  }
}

const cache = new Map<string, Promise<PciIds | null>>();

/** Loads the first pci.ids found (once per process and path list); null when there is none. */
export function loadPciIds(paths: string[] = DEFAULT_PCI_IDS_PATHS): Promise<PciIds | null> {
  const key = paths.join("\0");
  let p = cache.get(key);
  if (!p) {
    p = (async () => {
      for (const file of paths) {
        try {
          return new PciIdsText(await readFile(file));
        } catch {
          /* try the next location */
        }
      }
      return null;
    })();
    cache.set(key, p);
  }
  return p;
}
