// Reading a snapshot archive (`--snapshot F.tar.gz`): an untrusted file, so extraction streams and is
// bounded. It counts entries, bytes per entry, bytes in all and the compression ratio as the data
// arrives, and refuses the archive the moment one limit is passed: a gzip bomb costs a few
// megabytes of reading, never gigabytes of memory or disk. Names and link targets that leave the
// directory are refused too. openSnapshot extracts into a temporary root that is removed on every
// way out: a return, an error, process.exit, SIGINT, SIGTERM or SIGHUP.
import { createReadStream, rmSync } from "node:fs";
import { lstat, mkdir, mkdtemp, open, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tar, { type Header as Headers } from "tar-stream";
import { InputError } from "../core/errors.js";

export interface ExtractLimits {
  /** Entries of any kind. Real snapshots hold a few thousand. */
  entries: number;
  /** Content bytes of one file. The largest file detection reads (/proc/cpuinfo) is a few MB. */
  fileBytes: number;
  /** Bytes of the uncompressed tar stream (headers and padding included). */
  totalBytes: number;
  /** Uncompressed bytes per compressed byte, checked once `ratioAfterBytes` were produced. */
  ratio: number;
  ratioAfterBytes: number;
  /** Apparent size of a sparse file (an MSR read at 0xc0010114 makes a 3 GB one). */
  sparseBytes: number;
}

export const EXTRACT_LIMITS: ExtractLimits = {
  entries: 100_000,
  fileBytes: 32 * 2 ** 20,
  totalBytes: 512 * 2 ** 20,
  // Real snapshots compress 25-55x (tar headers and padding); a bomb compresses about 1000x.
  ratio: 250,
  ratioAfterBytes: 8 * 2 ** 20,
  sparseBytes: 2 ** 36,
};

export interface ExtractProgress {
  entries: number;
  bytes: number;
  elapsedMs: number;
}

export interface ExtractOptions {
  limits?: Partial<ExtractLimits>;
  /** Called about once a second while an extraction runs longer than a second. */
  onProgress?: (p: ExtractProgress) => void;
  /** How often onProgress is called, 1000 ms by default. */
  progressEveryMs?: number;
}

/** The archive broke a limit or a rule: its message says which, in one line. */
export class SnapshotRefused extends Error {
  override name = "SnapshotRefused";
}

const PROGRESS_EVERY_MS = 1000;
const block = (n: number) => Math.ceil(n / 512) * 512;
const mib = (n: number) => `${Math.round(n / 2 ** 20)} MiB`;

/**
 * Extracts a snapshot into dir, keeping symlinks. Entries whose name or link target leaves dir, and
 * entries that would be written through a symlink, are refused (the whole extraction fails).
 */
export async function extractSnapshot(
  file: string,
  dir: string,
  options: ExtractOptions = {},
): Promise<{ files: number }> {
  const limits = { ...EXTRACT_LIMITS, ...options.limits };
  const rootDir = path.resolve(dir);
  await mkdir(rootDir, { recursive: true });
  const started = Date.now();
  let lastProgress = started;
  let compressed = 0;
  let produced = 0;
  let entries = 0;
  const source = createReadStream(file);
  source.on("data", (c) => {
    compressed += c.length;
  });
  const progress = () => {
    const now = Date.now();
    if (!options.onProgress || now - lastProgress < (options.progressEveryMs ?? PROGRESS_EVERY_MS)) return;
    lastProgress = now;
    options.onProgress({ entries, bytes: produced, elapsedMs: now - started });
  };
  // Counts what gunzip produces and stops the stream at the first limit, inside a single entry too.
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      produced += chunk.length;
      if (produced > limits.totalBytes)
        return done(new SnapshotRefused(`it unpacks to more than ${mib(limits.totalBytes)}`));
      if (produced > limits.ratioAfterBytes && produced > compressed * limits.ratio)
        return done(
          new SnapshotRefused(
            `it unpacks to over ${limits.ratio} times its compressed size (${mib(produced)} from ${mib(compressed)} read): a compression bomb`,
          ),
        );
      progress();
      done(null, chunk);
    },
  });
  const extract = tar.extract();
  const piping = pipeline(source, createGunzip(), meter, extract);
  let files = 0;
  try {
    for await (const entry of extract) {
      if (++entries > limits.entries)
        throw new SnapshotRefused(`it holds more than ${limits.entries} entries`);
      progress();
      const h = entry.header as Headers & { pax?: Record<string, string> | null };
      const sparse = h.pax?.["GNU.sparse.major"] === "1" ? h.pax : null;
      const name = sparse?.["GNU.sparse.name"] ?? h.name;
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of entry) {
        size += (c as Buffer).length;
        if (size > limits.fileBytes)
          throw new SnapshotRefused(`entry ${name} is larger than ${mib(limits.fileBytes)}`);
        chunks.push(c as Buffer);
      }
      const body = Buffer.concat(chunks);
      const dest = safeDest(rootDir, name);
      if (dest === null) continue; // the root itself
      await checkNoSymlinkOnWay(rootDir, dest);
      if (h.type === "directory") {
        await mkdir(dest, { recursive: true });
      } else if (h.type === "symlink") {
        const target = h.linkname ?? "";
        const effective = target.startsWith("/")
          ? path.relative(path.dirname(dest), path.join(rootDir, target)) || "."
          : target;
        const resolved = path.resolve(path.dirname(dest), effective);
        if (resolved !== rootDir && !resolved.startsWith(`${rootDir}${path.sep}`)) {
          throw new SnapshotRefused(`entry ${name} links outside the snapshot (${target})`);
        }
        await mkdir(path.dirname(dest), { recursive: true });
        await rm(dest, { force: true });
        await symlink(effective, dest);
      } else if (h.type === "file" || h.type === "contiguous-file") {
        await mkdir(path.dirname(dest), { recursive: true });
        if (await isSymlink(dest)) await rm(dest);
        if (sparse) {
          const realsize = Number(sparse["GNU.sparse.realsize"] ?? 0);
          if (!Number.isSafeInteger(realsize) || realsize < 0 || realsize > limits.sparseBytes)
            throw new SnapshotRefused(
              `entry ${name} claims a size of ${sparse["GNU.sparse.realsize"]} bytes`,
            );
          await writeSparse(dest, body, realsize);
        } else await writeFile(dest, body);
      } else continue; // devices, fifos, hard links: not part of a snapshot
      files++;
    }
    await piping;
  } catch (e) {
    extract.destroy();
    await piping.catch(() => {});
    throw e;
  }
  return { files };
}

async function isSymlink(p: string): Promise<boolean> {
  try {
    return (await lstat(p)).isSymbolicLink();
  } catch {
    return false;
  }
}

function safeDest(rootDir: string, name: string): string | null {
  const clean = path.posix.normalize(name.replace(/^(\.\/)+/, "").replace(/^\/+/, ""));
  if (clean === "." || clean === "./" || clean === "") return null;
  if (clean === ".." || clean.startsWith("../") || path.posix.isAbsolute(clean)) {
    throw new SnapshotRefused(`entry ${name} escapes the snapshot directory`);
  }
  const dest = path.resolve(rootDir, clean);
  if (!dest.startsWith(`${rootDir}${path.sep}`))
    throw new SnapshotRefused(`entry ${name} escapes the snapshot directory`);
  return dest;
}

/** Refuses to write through a symlink an earlier entry created (it could point anywhere). */
async function checkNoSymlinkOnWay(rootDir: string, dest: string): Promise<void> {
  const rel = path.relative(rootDir, path.dirname(dest));
  if (!rel) return;
  let cur = rootDir;
  for (const part of rel.split(path.sep)) {
    cur = path.join(cur, part);
    try {
      if ((await lstat(cur)).isSymbolicLink()) {
        throw new SnapshotRefused(
          `entry ${path.relative(rootDir, dest)} would be written through the link ${path.relative(rootDir, cur)}`,
        );
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
  }
}

async function writeSparse(dest: string, body: Buffer, realsize: number): Promise<void> {
  // The map: decimal numbers, one per line: count, then offset and size of each data segment.
  let pos = 0;
  const bad = () => new SnapshotRefused(`bad sparse map in ${dest}`);
  const next = (): number => {
    const nl = body.indexOf(10, pos);
    if (nl < 0) throw bad();
    const n = Number(body.subarray(pos, nl).toString("ascii"));
    pos = nl + 1;
    if (!Number.isSafeInteger(n) || n < 0) throw bad();
    return n;
  };
  const count = next();
  const segs: { offset: number; size: number }[] = [];
  for (let i = 0; i < count; i++) {
    const s = { offset: next(), size: next() };
    if (s.offset + s.size > realsize) throw bad();
    segs.push(s);
  }
  let dataPos = block(pos);
  const fh = await open(dest, "w");
  try {
    await fh.truncate(realsize);
    for (const s of segs) {
      if (dataPos + s.size > body.length) throw new SnapshotRefused(`truncated sparse data in ${dest}`);
      await fh.write(body, dataPos, s.size, s.offset);
      dataPos += block(s.size);
    }
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------------------------------------------
// A snapshot opened as a temporary machine root

const EXIT_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/**
 * Removes dir when the process ends by a signal or process.exit before dispose runs. A signal is
 * re-raised after the removal, so the process still ends the way it was told to.
 */
export function removeOnExit(dir: string): () => void {
  const removeNow = () => rmSync(dir, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    // Someone else handles this signal (apply rides out SIGHUP): the process goes on, and so does the
    // root it reads; the exit hook still removes it.
    if (process.listenerCount(signal) > 1) return;
    dispose();
    removeNow();
    process.kill(process.pid, signal);
  };
  const dispose = () => {
    process.off("exit", removeNow);
    for (const s of EXIT_SIGNALS) process.off(s, onSignal);
  };
  process.on("exit", removeNow);
  for (const s of EXIT_SIGNALS) process.on(s, onSignal);
  return dispose;
}

/** Progress lines for an extraction that takes longer than a second, on stderr. */
export const stderrProgress =
  (file: string) =>
  (p: ExtractProgress): void => {
    process.stderr.write(
      `kvmstrap: extracting ${file}: ${p.entries} entries, ${mib(p.bytes)} after ${Math.round(p.elapsedMs / 1000)} s\n`,
    );
  };

/** Extracts a snapshot into a temporary root for detection; the caller must run cleanup. */
export async function openSnapshot(
  file: string,
  options: ExtractOptions = {},
): Promise<{ root: string; cleanup: () => Promise<void> }> {
  // A pipe is fine (`--snapshot <(ssh host cat s.tar.gz)`); a directory or a device is not an archive.
  const st = await stat(file).catch((e: NodeJS.ErrnoException) => {
    throw new InputError(
      `--snapshot ${file}: ${e.code === "ENOENT" ? "no such file" : `cannot read (${e.code})`}`,
    );
  });
  if (!st.isFile() && !st.isFIFO())
    throw new InputError(
      `--snapshot ${file}: not a file (a snapshot is a .tar.gz made by kvmstrap snapshot)`,
    );
  const dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-snapshot-"));
  const dispose = removeOnExit(dir);
  const cleanup = async () => {
    await rm(dir, { recursive: true, force: true });
    dispose();
  };
  try {
    await extractSnapshot(file, dir, { onProgress: stderrProgress(file), ...options });
  } catch (e) {
    await cleanup();
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !(e instanceof SnapshotRefused))
      throw new InputError(`--snapshot ${file}: no such file`);
    if (e instanceof SnapshotRefused) throw new InputError(`--snapshot ${file}: refused: ${e.message}`);
    throw new InputError(`--snapshot ${file}: not a readable snapshot (${(e as Error).message})`);
  }
  return { root: dir, cleanup };
}
