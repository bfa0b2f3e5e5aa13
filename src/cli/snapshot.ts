// Snapshots: the files detection read, as a .tar.gz laid out like the host ("./proc/...", "./sys/..."),
// so `tar xzf` plus `kvmstrap detect --root DIR` (or --snapshot FILE) reproduce the report elsewhere.
// Writing is atomic (a temporary file renamed into place, removed on any failure). --mask replaces MAC
// addresses, disk serials/WWNs (contents and /dev/disk/by-id names) and the hostname with deterministic
// placeholders of the same shape. Sparse files (bytes read at an offset of a device such as an MSR)
// use the GNU sparse 1.0 PAX format, which GNU tar, bsdtar and host/snapshot-archive understand.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import tar, { type Header as Headers } from "tar-stream";
import type { HostFs } from "../host/fs.js";
import { RootedHostFs } from "../host/fs.js";
import { collectRecorded, RecordingHostFs, type SnapshotEntry } from "../host/recording-fs.js";

export type { SnapshotEntry } from "../host/recording-fs.js";
// Extraction reads an untrusted archive, so it lives with the other host ports.
export { extractSnapshot } from "../host/snapshot-archive.js";

export interface SnapshotOptions {
  mask: boolean;
  detect: (fs: HostFs) => Promise<unknown>;
  /** The machine root to capture; "/" (the live host) by default. */
  root?: string;
}

/** Captures what `detect` reads into outFile; returns the entry count and the archive's size. */
export async function writeSnapshot(
  outFile: string,
  opts: SnapshotOptions,
): Promise<{ files: number; bytes: number }> {
  const rec = new RecordingHostFs(new RootedHostFs(opts.root ?? "/"));
  await opts.detect(rec);
  let entries = await collectRecorded(rec);
  if (opts.mask) entries = maskEntries(entries);
  const tmp = `${outFile}.tmp-${process.pid}`;
  try {
    await writeTarGz(tmp, entries);
    await rename(tmp, outFile);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    throw e;
  }
  return { files: entries.length, bytes: (await stat(outFile)).size };
}

async function writeTarGz(file: string, entries: SnapshotEntry[]): Promise<void> {
  const pack = tar.pack();
  const out = createWriteStream(file, { flags: "wx", mode: 0o644 });
  const done = pipeline(pack, createGzip(), out);
  const mtime = new Date();
  const add = (header: Partial<Headers> & { name: string; pax?: Record<string, string> }, body?: Buffer) =>
    new Promise<void>((resolve, reject) => {
      pack.entry(header, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  try {
    for (const e of entries) {
      const name = `.${e.path}`;
      if (e.type === "dir") await add({ name, type: "directory", mode: 0o755, mtime });
      else if (e.type === "symlink")
        await add({ name, type: "symlink", linkname: e.target, mode: 0o777, mtime });
      else if (e.type === "file")
        await add({ name, type: "file", mode: 0o644, mtime, size: e.content.length }, e.content);
      else {
        const body = encodeSparse(e);
        const sparseName = `${path.posix.dirname(name)}/GNUSparseFile.0/${path.posix.basename(name)}`;
        await add(
          {
            name: sparseName,
            type: "file",
            mode: 0o644,
            mtime,
            size: body.length,
            pax: {
              "GNU.sparse.major": "1",
              "GNU.sparse.minor": "0",
              "GNU.sparse.name": name,
              "GNU.sparse.realsize": String(e.size),
            },
          },
          body,
        );
      }
    }
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
  }
  await done;
}

/** Merges overlapping chunks into sorted, disjoint segments. */
function segments(chunks: { offset: number; data: Buffer }[]): { offset: number; data: Buffer }[] {
  const out: { offset: number; data: Buffer }[] = [];
  for (const c of [...chunks].sort((a, b) => a.offset - b.offset)) {
    const last = out[out.length - 1];
    if (last && c.offset <= last.offset + last.data.length) {
      const end = Math.max(last.offset + last.data.length, c.offset + c.data.length);
      const merged = Buffer.alloc(end - last.offset);
      last.data.copy(merged, 0);
      c.data.copy(merged, c.offset - last.offset);
      last.data = merged;
    } else out.push({ offset: c.offset, data: Buffer.from(c.data) });
  }
  return out;
}

const block = (n: number) => Math.ceil(n / 512) * 512;

/**
 * GNU sparse 1.0 data: a decimal map (count, then offset/size pairs) padded to 512 bytes, then each
 * data segment padded to 512 bytes (GNU tar reads every segment from a block boundary).
 */
function encodeSparse(e: Extract<SnapshotEntry, { type: "sparse" }>): Buffer {
  const segs = segments(e.chunks);
  const map = `${segs.length}\n${segs.map((s) => `${s.offset}\n${s.data.length}\n`).join("")}`;
  const mapBuf = Buffer.alloc(block(Buffer.byteLength(map)));
  mapBuf.write(map, "ascii");
  const padded = segs.map((s) => {
    const b = Buffer.alloc(block(s.data.length));
    s.data.copy(b);
    return b;
  });
  return Buffer.concat([mapBuf, ...padded]);
}

// ---------------------------------------------------------------------------------------------------
// Masking

const MAC_RE = /(?<![0-9a-f:])[0-9a-f]{2}(?::[0-9a-f]{2}){5,19}(?![0-9a-f:])/gi;
const ID_FILES = new Set(["serial", "wwid", "eui", "nguid", "product_uuid"]);
const UDEV_SECRET_KEYS = ["ID_SERIAL_SHORT", "ID_SCSI_SERIAL", "ID_WWN", "ID_WWN_WITH_EXTENSION"];
const HOSTNAME_FILES = new Set(["/proc/sys/kernel/hostname", "/etc/hostname"]);
const MASKED_HOSTNAME = "masked-host";

/**
 * Replaces MAC addresses, disk serials/WWNs and the hostname in entry contents, names and link
 * targets. Placeholders keep the shape (hex stays hex, digits stay digits, a MAC stays a locally
 * administered unicast MAC) and depend only on the order values are met, never on the values.
 */
export function maskEntries(entries: SnapshotEntry[]): SnapshotEntry[] {
  const masker = new Masker();
  const texts = new Map<string, string>();
  for (const e of entries) {
    if (e.type === "file" && !e.content.includes(0)) texts.set(e.path, e.content.toString("utf8"));
  }
  // 1. Find the secrets, in entry order so placeholders are deterministic.
  let hostname: string | null = null;
  for (const e of entries) {
    const text = texts.get(e.path);
    if (text === undefined) continue;
    for (const m of text.matchAll(MAC_RE)) masker.addMac(m[0]);
    if (HOSTNAME_FILES.has(e.path) && text.trim()) hostname ??= text.trim();
    const base = path.posix.basename(e.path);
    if (e.path.startsWith("/sys/") && (ID_FILES.has(base) || base.endsWith("_serial")))
      masker.addId(text.trim());
    if (e.path.startsWith("/run/udev/data/")) {
      const env = new Map<string, string>();
      for (const line of text.split("\n")) {
        const i = line.indexOf("=");
        if (line.startsWith("E:") && i > 2) env.set(line.slice(2, i), line.slice(i + 1).trim());
      }
      for (const k of UDEV_SECRET_KEYS) masker.addId(env.get(k) ?? "");
      // ID_SERIAL is MODEL_SERIAL; mask it whole only when the short serial is not there to mask.
      if (!env.has("ID_SERIAL_SHORT")) masker.addId(env.get("ID_SERIAL") ?? "");
      const enx = /^enx([0-9a-f]{12})$/i.exec(env.get("ID_NET_NAME_MAC") ?? "");
      if (enx?.[1]) masker.addMac(enx[1].replace(/(..)(?!$)/g, "$1:"));
    }
  }
  // 2. Apply them to contents, names and link targets. Short values (a serial of 4-7 characters could
  // occur by chance in any number) are replaced only where serials live: id files, udev data, /dev.
  const replaceAll = masker.replacer(true);
  const replaceLong = masker.replacer(false);
  const idPlace = (p: string) =>
    p.startsWith("/dev/") ||
    p.startsWith("/run/udev/data/") ||
    (p.startsWith("/sys/") && (ID_FILES.has(path.posix.basename(p)) || p.endsWith("_serial")));
  const replace = (s: string, where: string) => (idPlace(where) ? replaceAll(s) : replaceLong(s));
  return entries.map((e): SnapshotEntry => {
    const p = replace(e.path, e.path);
    if (e.type === "dir") return { type: "dir", path: p };
    if (e.type === "symlink") return { type: "symlink", path: p, target: replace(e.target, e.path) };
    if (e.type === "sparse") return { ...e, path: p };
    const text = texts.get(e.path);
    if (text === undefined) return { ...e, path: p };
    let masked: string;
    if (HOSTNAME_FILES.has(e.path) && hostname) masked = text.replace(hostname, MASKED_HOSTNAME);
    else if (e.path === "/etc/hosts" && hostname) {
      const word = new RegExp(`(?<![\\w.-])${escapeRe(hostname)}(?![\\w-])`, "g");
      masked = replace(text, e.path).replace(word, MASKED_HOSTNAME);
    } else masked = replace(text, e.path);
    return { type: "file", path: p, content: Buffer.from(masked, "utf8") };
  });
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

class Masker {
  /** original -> placeholder, for whole values and for their alphanumeric cores. */
  private readonly map = new Map<string, string>();
  private readonly cores = new Map<string, string>();
  private readonly originals = new Set<string>();
  private counter = 0;

  addMac(mac: string): void {
    const core = mac.replace(/:/g, "");
    if (/^0+$/.test(core) || /^f+$/i.test(core) || this.map.has(mac)) return;
    const masked = this.maskCore(core, true);
    this.set(mac, masked.replace(/(..)(?!$)/g, "$1:"));
    this.set(core, masked);
  }

  /** A serial or WWN: naa./eui./t10./0x prefixes stay, separators stay, the rest is replaced. */
  addId(value: string): void {
    const v = value.trim();
    if (v.length < 4 || this.map.has(v)) return;
    const m = /^(naa\.|eui\.|t10\.|0x)?(.*)$/is.exec(v);
    const prefix = m?.[1] ?? "";
    const rest = m?.[2] ?? v;
    const core = rest.replace(/[^0-9a-z]/gi, "");
    if (core.length < 4 || /^(.)\1*$/.test(core)) return;
    const maskedCore = this.maskCore(core, false);
    let i = 0;
    const maskedRest = rest.replace(/[0-9a-z]/gi, () => maskedCore[i++] ?? "0");
    this.set(v, prefix + maskedRest);
    if (rest !== v) this.set(rest, maskedRest);
    if (core !== rest && core.length >= 8) this.set(core, maskedCore);
  }

  private set(original: string, placeholder: string): void {
    if (!this.map.has(original)) this.map.set(original, placeholder);
    this.originals.add(original);
  }

  private maskCore(core: string, mac: boolean): string {
    const known = this.cores.get(core.toLowerCase());
    if (known) return matchCase(core, known);
    const hex = /^[0-9a-f]+$/i.test(core);
    let out = "";
    for (let attempt = 0; attempt < 100; attempt++) {
      this.counter++;
      const stream = bytesFor(this.counter, core.length);
      out = [...core]
        .map((ch, i) => {
          const b = stream[i] ?? 0;
          if (/[0-9]/.test(ch)) return String(b % 10);
          const letter = hex ? "abcdef"[b % 6] : "abcdefghijklmnopqrstuvwxyz"[b % 26];
          return ch === ch.toUpperCase() ? (letter ?? "a").toUpperCase() : (letter ?? "a");
        })
        .join("");
      if (mac) {
        // Locally administered, unicast: bit 1 of the first octet set, bit 0 clear.
        const first = ((Number.parseInt(out.slice(0, 2), 16) & 0xfc) | 0x02).toString(16).padStart(2, "0");
        out = matchCase(core.slice(0, 2), first) + out.slice(2);
      }
      if (!this.originals.has(out) && !this.cores.has(out.toLowerCase())) break;
    }
    this.cores.set(core.toLowerCase(), out.toLowerCase());
    return matchCase(core, out);
  }

  /** One pass over a string replacing every original (longest first). */
  replacer(includeShort: boolean): (s: string) => string {
    const keys = [...this.map.keys()]
      .filter((k) => includeShort || k.length >= 8)
      .sort((a, b) => b.length - a.length);
    const macs = new Map<string, string>();
    for (const [k, v] of this.map) if (/^[0-9a-f]{2}(:[0-9a-f]{2})+$/i.test(k)) macs.set(k.toLowerCase(), v);
    const re = keys.length ? new RegExp(keys.map(escapeRe).join("|"), "g") : null;
    return (s: string) => {
      let out = re ? s.replace(re, (m) => this.map.get(m) ?? m) : s;
      // A MAC in another case than first met (AA:BB vs aa:bb) still maps to its placeholder.
      out = out.replace(MAC_RE, (m) => {
        const v = macs.get(m.toLowerCase());
        return v ? matchCase(m, v) : m;
      });
      return out;
    };
  }
}

function bytesFor(n: number, length: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < length; i++) {
    parts.push(createHash("sha256").update(`kvmstrap-mask:${n}:${i}`).digest());
  }
  return Buffer.concat(parts);
}

/** Gives `value` the letter case of `like` (upper when `like` has uppercase letters). */
function matchCase(like: string, value: string): string {
  return /[A-Z]/.test(like) && !/[a-z]/.test(like) ? value.toUpperCase() : value;
}
