// The image cache: pull a catalogue image over HTTP(S) (streamed, hashed while streaming, resumed
// with a Range request), import a local disk image, list what is cached, delete one. An image enters
// the cache only verified, by an atomic rename, read-only (0444); a failed download never does. An
// interrupted one stays as NAME.partial for the next pull to resume; a mismatching one is deleted.
// A name is bound to its content for good: VM overlays point at the base's path, so replacing the
// file under a name would change the disks of every VM on it. A pull or import that would put other
// bytes under a cached name is refused; the operator picks a new name or deletes the old base, which
// is refused while any VM uses it.
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, open, readdir, rename, stat, truncate, unlink } from "node:fs/promises";
import path from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as WebReadableStream } from "node:stream/web";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { type CatalogueEntry, expectedChecksum, IMAGE_NAME } from "./catalogue.js";
import { type DigestType, findChecksum, hashFileInto, newHash } from "./checksums.js";
import { type CachedImage, DEFAULT_CACHE_DIR, readIndex, updateIndex } from "./image-index.js";
import type { Libvirt } from "./libvirt.js";
import { DEFAULT_VM_DIR, readRecord } from "./vm-state.js";

export { type CachedImage, DEFAULT_CACHE_DIR } from "./image-index.js";

export type ImageErrorCode =
  | "unreachable"
  | "http"
  | "interrupted"
  | "checksum-mismatch"
  | "checksum-missing";

/** A pull that failed for a reason outside the operator's input (exit 1). */
export class ImageError extends Error {
  override name = "ImageError";
  constructor(
    readonly code: ImageErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type PullProgress = {
  name: string;
  phase: "checksum" | "rehash" | "download" | "verify" | "done";
  /** Bytes of the image on disk so far (including a resumed part). */
  received: number;
  total?: number;
  resumedFrom: number;
  bytesPerSecond?: number;
  etaSeconds?: number;
};

export type PullOptions = {
  cacheDir?: string;
  fetchImpl?: typeof fetch;
  onProgress?: (p: PullProgress) => void;
  /** Automatic resumes after an interruption within this call (default 2). */
  retries?: number;
  runner?: CommandRunner;
  signal?: AbortSignal;
};

export type PullResult = CachedImage & { path: string; cached: boolean; resumed: boolean };

const describe = (e: unknown): string => {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  return err.cause?.code ?? err.cause?.message ?? err.message;
};

async function get(fetchImpl: typeof fetch, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetchImpl(url, init);
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ImageError("unreachable", `cannot reach ${url}: ${describe(e)}`);
  }
}

async function resolveDigest(entry: CatalogueEntry, fetchImpl: typeof fetch, signal?: AbortSignal) {
  const want = expectedChecksum(entry);
  if (want.value) return { type: want.type, value: want.value };
  const url = want.url as string;
  const res = await get(fetchImpl, url, { signal });
  if (!res.ok) throw new ImageError("http", `${url} answered HTTP ${res.status} ${res.statusText}`.trim());
  const value = findChecksum(await res.text(), want.name, want.type);
  if (!value) throw new ImageError("checksum-missing", `${url} lists no ${want.type} for ${want.name}`);
  return { type: want.type, value };
}

const fileSize = (f: string) =>
  stat(f).then(
    (s) => s.size,
    () => 0,
  );

/** One download attempt into `partial`, resuming what is there. Returns the hex digest. */
async function downloadOnce(
  entry: CatalogueEntry,
  partial: string,
  type: DigestType,
  o: Required<Pick<PullOptions, "fetchImpl">> & PullOptions,
  state: { resumed: boolean },
): Promise<string> {
  let offset = await fileSize(partial);
  let hash = newHash(type);
  const progress = (p: Omit<PullProgress, "name" | "resumedFrom">) =>
    o.onProgress?.({ name: entry.name, resumedFrom: offset, ...p });
  if (offset > 0) {
    progress({ phase: "rehash", received: 0, total: offset });
    offset = await hashFileInto(partial, hash);
  }
  let res = await get(o.fetchImpl, entry.url, {
    signal: o.signal,
    headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
  });
  let total: number | undefined;
  const range = /^bytes (\d+)-\d+\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
  if (offset > 0 && res.status === 416) {
    const whole = Number(/\/(\d+)$/.exec(res.headers.get("content-range") ?? "")?.[1]);
    await res.body?.cancel();
    if (whole === offset) return hash.digest("hex"); // already complete
  }
  if (offset > 0 && (res.status !== 206 || Number(range?.[1]) !== offset)) {
    // The server ignored or mangled the range: start over.
    if (res.status !== 200) {
      await res.body?.cancel();
      res = await get(o.fetchImpl, entry.url, { signal: o.signal });
    }
    offset = 0;
    hash = newHash(type);
    await truncate(partial, 0);
  } else if (offset > 0) {
    state.resumed = true;
    total = Number(range?.[2]);
  }
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new ImageError("http", `${entry.url} answered HTTP ${res.status} ${res.statusText}`.trim());
  }
  if (total === undefined && res.headers.get("content-length")) {
    total = offset + Number(res.headers.get("content-length"));
  }
  const started = performance.now();
  let received = offset;
  let last = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      received += chunk.length;
      const t = performance.now();
      if (t - last >= 100 || received === total) {
        last = t;
        const bytesPerSecond = (received - offset) / Math.max((t - started) / 1000, 1e-3);
        const etaSeconds = total !== undefined ? (total - received) / Math.max(bytesPerSecond, 1) : undefined;
        progress({ phase: "download", received, total, bytesPerSecond, etaSeconds });
      }
      done(null, chunk);
    },
  });
  const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
  try {
    await pipeline(body, meter, createWriteStream(partial, { flags: offset > 0 ? "a" : "w" }));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((e as Error).name === "AbortError" || code === "ENOSPC" || code === "EACCES") throw e;
    throw new ImageError(
      "interrupted",
      `download of ${entry.name} interrupted after ${mb(received)} (${describe(e)}); run the pull again to resume`,
    );
  }
  if (total !== undefined && received !== total) {
    throw new ImageError(
      "interrupted",
      `download of ${entry.name} ended at ${mb(received)} of ${mb(total)}; run the pull again to resume`,
    );
  }
  return hash.digest("hex");
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

/** Downloads a catalogue image into the cache, verified; returns what the cache now holds. */
export async function pullImage(entry: CatalogueEntry, options: PullOptions = {}): Promise<PullResult> {
  const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
  const o = { ...options, fetchImpl: options.fetchImpl ?? fetch };
  await mkdir(cacheDir, { recursive: true });
  o.onProgress?.({ name: entry.name, phase: "checksum", received: 0, resumedFrom: 0 });
  const want = await resolveDigest(entry, o.fetchImpl, o.signal);
  const file = `${entry.name}.${entry.format}`;
  const finalPath = path.join(cacheDir, file);
  const known = (await readIndex(cacheDir))[entry.name];
  if (known && known.checksum.value === want.value && (await fileSize(finalPath)) === known.size) {
    return { ...known, path: finalPath, cached: true, resumed: false };
  }
  if (known && known.checksum.value !== want.value && (await fileSize(path.join(cacheDir, known.file))) > 0) {
    throw nameTaken(entry.name, known, `the catalogue now lists ${want.type}:${want.value.slice(0, 16)}...`);
  }
  const partial = path.join(cacheDir, `${entry.name}.partial`);
  const state = { resumed: false };
  let got = "";
  for (let attempt = 0; ; attempt++) {
    try {
      got = await downloadOnce(entry, partial, want.type, o, state);
      break;
    } catch (e) {
      if (!(e instanceof ImageError && e.code === "interrupted") || attempt >= (o.retries ?? 2)) throw e;
    }
  }
  const size = await fileSize(partial);
  o.onProgress?.({ name: entry.name, phase: "verify", received: size, total: size, resumedFrom: 0 });
  if (got !== want.value) {
    await unlink(partial).catch(() => {});
    throw new ImageError(
      "checksum-mismatch",
      `checksum mismatch for ${entry.name}: expected ${want.type}:${want.value}, got ${want.type}:${got}`,
    );
  }
  const fh = await open(partial, "r");
  await fh.sync();
  await fh.close();
  await chmod(partial, 0o444);
  await rename(partial, finalPath);
  const virtualSize = await qemuInfo(o.runner ?? new ExecaRunner(), finalPath).then(
    (i) => i?.virtualSize,
    () => undefined,
  );
  const image: CachedImage = {
    name: entry.name,
    file,
    format: entry.format,
    size,
    virtualSize,
    checksum: want,
    source: entry.url,
    osinfo: entry.osinfo,
    added: new Date().toISOString(),
  };
  await updateIndex(cacheDir, (images) => {
    images[entry.name] = image;
  });
  o.onProgress?.({ name: entry.name, phase: "done", received: size, total: size, resumedFrom: 0 });
  return { ...image, path: finalPath, cached: false, resumed: state.resumed };
}

/** The refusal to put other bytes under a cached name. */
function nameTaken(name: string, known: CachedImage, now: string): InputError {
  return new InputError(
    `image "${name}" is already cached with other content (${known.checksum.type}:` +
      `${known.checksum.value.slice(0, 16)}..., from ${known.source}) and ${now}; a cached base never ` +
      `changes under its name: use another name, or "kvmstrap image delete ${name}" first ` +
      "(refused while a VM uses it)",
  );
}

type QemuInfo = { format: string; virtualSize: number; backing?: string };

/** `qemu-img info --output=json`, or null when qemu-img is not installed. Throws when it cannot read. */
async function qemuInfo(runner: CommandRunner, file: string): Promise<QemuInfo | null> {
  if (!(await runner.which("qemu-img"))) return null;
  const r = await runner.run("qemu-img", ["info", "--output=json", file], { timeoutMs: 30_000 });
  if (r.exitCode !== 0) throw new Error(r.stderr.trim().split("\n")[0] || `qemu-img exited ${r.exitCode}`);
  const j = JSON.parse(r.stdout) as { format: string; "virtual-size": number; "backing-filename"?: string };
  return { format: j.format, virtualSize: j["virtual-size"], backing: j["backing-filename"] };
}

// qemu-img calls any file it cannot place "raw", so for raw the content has to show it is a disk:
// blkid (util-linux) must find a partition table (dos, gpt) or a filesystem on it. Random bytes, a
// text file or a zero-filled file have none. Sizes: a disk is whole 512-byte sectors, at most 64 TiB.
const MAX_VIRTUAL = 64 * 2 ** 40;

async function checkRawLayout(runner: CommandRunner, file: string, virtualSize: number): Promise<void> {
  if (virtualSize % 512 !== 0) {
    throw new InputError(`${file}: ${virtualSize} bytes is not a whole number of 512-byte sectors`);
  }
  if (!(await runner.which("blkid"))) {
    throw new InputError("blkid is not installed (Debian package util-linux); cannot check a raw image");
  }
  const r = await runner.run("blkid", ["-p", "-o", "export", file], { timeoutMs: 30_000 });
  const found = Object.fromEntries(
    r.stdout
      .split("\n")
      .map((l) => l.split("="))
      .filter((kv): kv is [string, string] => kv.length === 2 && Boolean(kv[0])),
  );
  if (r.exitCode !== 0 || !(found.PTTYPE || found.TYPE)) {
    throw new InputError(
      `${file}: not a disk image: qemu-img reads it as raw but it holds no partition table ` +
        "(MBR or GPT) and no filesystem (blkid -p found none)",
    );
  }
}

/** Checks the image qemu-img describes has a layout a disk can have. */
async function checkLayout(runner: CommandRunner, file: string, info: QemuInfo, bytes: number) {
  if (!(info.virtualSize > 0) || info.virtualSize > MAX_VIRTUAL) {
    throw new InputError(`${file}: implausible virtual size ${info.virtualSize} bytes (1 B - 64 TiB)`);
  }
  // qemu-img rounds a raw file's virtual size up to a sector, so the file's own size is checked.
  if (info.format === "raw") await checkRawLayout(runner, file, bytes);
}

/**
 * Copies a local disk image into the cache under `name`, with its sha256 recorded. Refuses (InputError)
 * files qemu-img cannot read or finds corrupt, and images with a backing file (which could point
 * anywhere on the host).
 */
export async function importImage(
  file: string,
  name: string,
  options: { cacheDir?: string; runner?: CommandRunner } = {},
): Promise<PullResult> {
  const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
  const runner = options.runner ?? new ExecaRunner();
  if (!IMAGE_NAME.test(name)) throw new InputError(`--name "${name}": use lower-case letters, digits, . _ -`);
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) throw new InputError(`${file}: not a readable regular file`);
  let info: QemuInfo | null;
  try {
    info = await qemuInfo(runner, file);
  } catch (e) {
    throw new InputError(`${file}: not a disk image qemu-img can read: ${(e as Error).message}`);
  }
  if (!info)
    throw new InputError("qemu-img is not installed (Debian package qemu-utils); cannot check images");
  if (info.format !== "qcow2" && info.format !== "raw") {
    throw new InputError(`${file}: format ${info.format} is not supported (qcow2 or raw)`);
  }
  if (info.backing) throw new InputError(`${file}: has a backing file (${info.backing}); flatten it first`);
  await checkLayout(runner, file, info, st.size);
  if (info.format === "qcow2") {
    const r = await runner.run("qemu-img", ["check", "-f", "qcow2", file], { timeoutMs: 120_000 });
    if (r.exitCode !== 0 && r.exitCode !== 3) {
      const why = r.stderr.trim().split("\n")[0] || r.stdout.trim().split("\n").pop() || `exit ${r.exitCode}`;
      throw new InputError(`${file}: qemu-img check reports a corrupt image: ${why}`);
    }
  }
  await mkdir(cacheDir, { recursive: true });
  const target = `${name}.${info.format}`;
  const tmp = path.join(cacheDir, `${name}.import-partial`);
  const hash = newHash("sha256");
  const hasher = new Transform({
    transform(chunk: Buffer, _e, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(createReadStream(file), hasher, createWriteStream(tmp, { flags: "w" }));
    const fh = await open(tmp, "r");
    await fh.sync();
    await fh.close();
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const checksum = { type: "sha256" as const, value: hash.digest("hex") };
  const known = (await readIndex(cacheDir))[name];
  if (known && (await fileSize(path.join(cacheDir, known.file))) > 0) {
    await unlink(tmp).catch(() => {});
    if (known.checksum.value === checksum.value) {
      // The same bytes again: nothing changes, so importing twice is harmless.
      return { ...known, path: path.join(cacheDir, known.file), cached: true, resumed: false };
    }
    throw nameTaken(name, known, `${file} differs (sha256:${checksum.value.slice(0, 16)}...)`);
  }
  try {
    await chmod(tmp, 0o444);
    await rename(tmp, path.join(cacheDir, target));
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const image: CachedImage = {
    name,
    file: target,
    format: info.format,
    size: st.size,
    virtualSize: info.virtualSize,
    checksum,
    source: path.resolve(file),
    added: new Date().toISOString(),
  };
  await updateIndex(cacheDir, (images) => {
    images[name] = image;
  });
  return { ...image, path: path.join(cacheDir, target), cached: false, resumed: false };
}

/** What the cache holds (entries whose file is gone are left out), sorted by name. */
export async function listImages(
  cacheDir: string = DEFAULT_CACHE_DIR,
): Promise<(CachedImage & { path: string })[]> {
  const out: (CachedImage & { path: string })[] = [];
  for (const img of Object.values(await readIndex(cacheDir))) {
    const p = path.join(cacheDir, img.file);
    const size = await stat(p).then(
      (s) => s.size,
      () => -1,
    );
    if (size >= 0) out.push({ ...img, size, path: p });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** A VM whose disk is an overlay on a cached base: deleting the base would destroy its disk. */
export type ImageUser = { vm: string; via: "kvmstrap record" | "libvirt domain" };

/**
 * The VMs using the base at `basePath` (cached as `name`): kvmstrap's VM records under vmDir (a
 * record names its base by path or by cached name), and, when a libvirt connection is given, every
 * domain whose definition names the file (overlays made by other tools).
 */
export async function imageUsers(
  basePath: string,
  o: { vmDir?: string; libvirt?: Libvirt; name?: string } = {},
): Promise<ImageUser[]> {
  const vmDir = o.vmDir ?? DEFAULT_VM_DIR;
  const users = new Map<string, ImageUser>();
  for (const name of await readdir(vmDir).catch(() => [] as string[])) {
    const record = await readRecord(vmDir, name);
    if (record && (record.base === o.name || path.resolve(record.base) === path.resolve(basePath))) {
      users.set(name, { vm: name, via: "kvmstrap record" });
    }
  }
  if (o.libvirt) {
    for (const d of await o.libvirt.listDomains()) {
      if (users.has(d.name)) continue;
      const xml = await o.libvirt.domainXml(d.name).catch(() => "");
      if (xml.includes(`'${basePath}'`) || xml.includes(`"${basePath}"`)) {
        users.set(d.name, { vm: d.name, via: "libvirt domain" });
      }
    }
  }
  return [...users.values()].sort((a, b) => a.vm.localeCompare(b.vm));
}

/**
 * Removes a cached base and its index entry; refused (InputError, exit 2) when the name is unknown or
 * any VM uses it, naming those VMs.
 */
export async function deleteImage(
  name: string,
  o: { cacheDir?: string; vmDir?: string; libvirt?: Libvirt } = {},
): Promise<CachedImage & { path: string }> {
  const cacheDir = o.cacheDir ?? DEFAULT_CACHE_DIR;
  const known = (await readIndex(cacheDir))[name];
  if (!known) throw new InputError(`image "${name}" is not in the cache ${cacheDir} (kvmstrap image list)`);
  const file = path.join(cacheDir, known.file);
  const users = await imageUsers(file, { ...o, name });
  if (users.length) {
    throw new InputError(
      `image "${name}" is the base of ${users.length} VM(s): ${users.map((u) => `${u.vm} (${u.via})`).join(", ")}; ` +
        "delete those VMs first (kvmstrap vm delete NAME)",
    );
  }
  // The index first: a crash between the two leaves an unlisted file, never a listed missing one.
  await updateIndex(cacheDir, (images) => {
    delete images[name];
  });
  await unlink(file).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
  });
  return { ...known, path: file };
}
