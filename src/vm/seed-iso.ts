// A NoCloud seed as an ISO9660 image, written in process: volume id "cidata", the files user-data,
// meta-data and network-config in the root. Level 1 (8.3, upper case) names in the primary tree
// and Joliet names (UCS-2, exact, lower case with dashes) in a supplementary tree that Linux, blkid,
// isoinfo -J and xorriso read. Both trees point at the same file extents. Written atomically.
import { randomBytes } from "node:crypto";
import { mkdtemp, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { renderSeed, type Seed, type SeedInput } from "./cloud-init.js";

const SECTOR = 2048;
export type IsoFile = { name: string; data: Uint8Array };
export type IsoOptions = { volumeId?: string; date?: Date };

const both16 = (b: Buffer, off: number, v: number) => {
  b.writeUInt16LE(v, off);
  b.writeUInt16BE(v, off + 2);
};
const both32 = (b: Buffer, off: number, v: number) => {
  b.writeUInt32LE(v, off);
  b.writeUInt32BE(v, off + 4);
};
const ucs2 = (s: string) => Buffer.from(s, "utf16le").swap16();
const sectors = (n: number) => Math.ceil(n / SECTOR);

function dirRecord(id: Buffer, lba: number, size: number, isDir: boolean, d: Date): Buffer {
  const len = 33 + id.length + (id.length % 2 === 0 ? 1 : 0);
  const r = Buffer.alloc(len);
  r[0] = len;
  both32(r, 2, lba);
  both32(r, 10, size);
  r.set(
    [d.getUTCFullYear() - 1900, d.getUTCMonth() + 1, d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes()],
    18,
  );
  r[23] = d.getUTCSeconds();
  r[25] = isDir ? 2 : 0;
  both16(r, 28, 1);
  r[32] = id.length;
  id.copy(r, 33);
  return r;
}

function volDate(d: Date): Buffer {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const s = `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}00`;
  return Buffer.concat([Buffer.from(s, "ascii"), Buffer.from([0])]);
}

/** Level 1 identifiers ("USER_DAT.;1"), made unique. */
function isoNames(names: string[]): string[] {
  const used = new Set<string>();
  return names.map((n) => {
    const dot = n.lastIndexOf(".");
    const clean = (s: string) => s.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
    const base = clean(dot > 0 ? n.slice(0, dot) : n).slice(0, 8) || "_";
    const ext = dot > 0 ? clean(n.slice(dot + 1)).slice(0, 3) : "";
    let id = `${base}.${ext}`;
    for (let i = 1; used.has(id); i++) id = `${base.slice(0, 8 - String(i).length)}${i}.${ext}`;
    used.add(id);
    return `${id};1`;
  });
}

/** The whole image as one buffer. */
export function buildIso(files: IsoFile[], options: IsoOptions = {}): Buffer {
  const date = options.date ?? new Date();
  const volumeId = options.volumeId ?? "cidata";
  if (files.length === 0 || files.length > 30) throw new Error("an ISO seed holds 1 to 30 files");
  for (const f of files) {
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(f.name)) throw new Error(`bad ISO file name "${f.name}"`);
  }
  // Layout: 16 system sectors, PVD, SVD (Joliet), terminator, 4 path tables, 2 root directories, data.
  const [pvd, svd, term, lPath, mPath, jlPath, jmPath, root, jroot] = [16, 17, 18, 19, 20, 21, 22, 23, 24];
  let next = 25;
  const extents = files.map((f) => {
    const lba = next;
    next += Math.max(1, sectors(f.data.length));
    return lba;
  });
  const total = next;
  const img = Buffer.alloc(total * SECTOR);
  files.forEach((f, i) => {
    img.set(f.data, (extents[i] as number) * SECTOR);
  });

  const writeDir = (lba: number, ids: Buffer[], order: number[]) => {
    let off = lba * SECTOR;
    for (const rec of [
      dirRecord(Buffer.from([0]), lba, SECTOR, true, date),
      dirRecord(Buffer.from([1]), lba, SECTOR, true, date),
    ]) {
      rec.copy(img, off);
      off += rec.length;
    }
    for (const i of order) {
      const rec = dirRecord(
        ids[i] as Buffer,
        extents[i] as number,
        (files[i] as IsoFile).data.length,
        false,
        date,
      );
      if (off + rec.length > (lba + 1) * SECTOR) throw new Error("too many files for one directory sector");
      rec.copy(img, off);
      off += rec.length;
    }
  };
  const isoIds = isoNames(files.map((f) => f.name)).map((n) => Buffer.from(n, "ascii"));
  const jolietIds = files.map((f) => ucs2(f.name));
  const sortBy = (ids: Buffer[]) =>
    ids.map((_, i) => i).sort((a, b) => Buffer.compare(ids[a] as Buffer, ids[b] as Buffer));
  writeDir(root, isoIds, sortBy(isoIds));
  writeDir(jroot, jolietIds, sortBy(jolietIds));

  const pathTable = (at: number, dirLba: number, big: boolean) => {
    const o = at * SECTOR;
    img[o] = 1; // identifier length (the root's is a single 0 byte)
    if (big) img.writeUInt32BE(dirLba, o + 2);
    else img.writeUInt32LE(dirLba, o + 2);
    if (big) img.writeUInt16BE(1, o + 6);
    else img.writeUInt16LE(1, o + 6);
  };
  pathTable(lPath, root, false);
  pathTable(mPath, root, true);
  pathTable(jlPath, jroot, false);
  pathTable(jmPath, jroot, true);

  const descriptor = (at: number, joliet: boolean) => {
    const d = img.subarray(at * SECTOR, (at + 1) * SECTOR);
    d[0] = joliet ? 2 : 1;
    d.write("CD001", 1, "ascii");
    d[6] = 1;
    const text = (off: number, len: number, s: string) => {
      if (joliet) {
        for (let i = 0; i < len; i += 2) d.writeUInt16BE(0x20, off + i);
        ucs2(s).copy(d, off, 0, len);
      } else {
        d.fill(0x20, off, off + len);
        d.write(s.slice(0, len), off, "ascii");
      }
    };
    text(8, 32, "LINUX");
    text(40, 32, volumeId);
    both32(d, 80, total);
    if (joliet) d.write("%/E", 88, "ascii"); // UCS-2 level 3
    both16(d, 120, 1);
    both16(d, 124, 1);
    both16(d, 128, SECTOR);
    both32(d, 132, 10);
    d.writeUInt32LE(joliet ? jlPath : lPath, 140);
    d.writeUInt32BE(joliet ? jmPath : mPath, 148);
    dirRecord(Buffer.from([0]), joliet ? jroot : root, SECTOR, true, date).copy(d, 156);
    for (const [off, len] of [
      [190, 128],
      [318, 128],
      [446, 128],
      [702, 37],
      [739, 37],
      [776, 37],
    ] as const)
      text(off, len, "");
    text(574, 128, "KVMSTRAP");
    const vd = volDate(date);
    vd.copy(d, 813);
    vd.copy(d, 830);
    Buffer.from("0000000000000000\0", "ascii").copy(d, 847);
    vd.copy(d, 864);
    d[881] = 1;
  };
  descriptor(pvd, false);
  descriptor(svd, true);
  const t = img.subarray(term * SECTOR);
  t[0] = 255;
  t.write("CD001", 1, "ascii");
  t[6] = 1;
  return img;
}

/** The seed's three files, in the names NoCloud reads. */
export function seedFiles(seed: Pick<Seed, "userData" | "metaData" | "networkConfig">): IsoFile[] {
  return [
    { name: "user-data", data: Buffer.from(seed.userData) },
    { name: "meta-data", data: Buffer.from(seed.metaData) },
    { name: "network-config", data: Buffer.from(seed.networkConfig) },
  ];
}

/** The volume date of every seed kvmstrap writes: a fixed date makes equal seeds equal bytes, so an
 *  apply can tell a seed already in place from one to write. */
export const SEED_DATE = new Date(Date.UTC(2000, 0, 1));

/** The seed ISO's bytes for these three documents (deterministic: see SEED_DATE). */
export function seedIsoBytes(seed: Pick<Seed, "userData" | "metaData" | "networkConfig">): Buffer {
  return buildIso(seedFiles(seed), { date: SEED_DATE });
}

/** Writes the NoCloud "cidata" ISO for seed to outFile (temporary file + rename). */
export async function buildSeedIso(seed: Seed, outFile: string, options: IsoOptions = {}): Promise<void> {
  const image = buildIso(seedFiles(seed), options);
  const tmp = `${outFile}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await writeFile(tmp, image, { mode: 0o644 });
    await rename(tmp, outFile);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/**
 * For the bench: median milliseconds of renderSeed + buildSeedIso (to a temporary file) over n runs.
 * Target: <= 10 ms.
 */
export async function benchSeedBuild(input: SeedInput, n = 50): Promise<{ medianMs: number; runs: number }> {
  const dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-seed-bench-"));
  try {
    const times: number[] = [];
    for (let i = 0; i < n + 5; i++) {
      const t = performance.now();
      await buildSeedIso(renderSeed(input), path.join(dir, "seed.iso"));
      if (i >= 5) times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    const medianMs =
      times.length % 2 ? (times[mid] as number) : ((times[mid - 1] as number) + (times[mid] as number)) / 2;
    return { medianMs, runs: n };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
