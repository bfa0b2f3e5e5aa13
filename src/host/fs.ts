// HostFs: the read-only port onto /proc, /sys, /dev and /etc of one machine, rooted at a directory.
// Paths given to it are always host paths ("/sys/class/net"); the root is a detail of the port, so
// a snapshot and the live host read the same. Under a root other than "/", symlinks are resolved
// inside the root: an absolute link in a snapshot (etc/mtab -> /proc/self/mounts) must lead to the
// snapshot's file, never to the live machine's. A tree under a root is untrusted: see READ_LIMITS.
// One RootedHostFs is one look at a tree: it caches how directories resolve and what the kernel
// views (/sys, /proc, /dev) hold, so a new look at a changed tree takes a new instance.
//
// I/O is asynchronous and uses the callback API: fs/promises' readFile costs four thread-pool round
// trips per file, about 4x slower on the hundreds of small sysfs reads one detection makes.
import * as fs from "node:fs";
import path from "node:path";

export type ReadProblem = {
  path: string;
  reason:
    | "missing"
    | "dangling"
    | "unreadable"
    | "loop"
    | "outside-root"
    | "special"
    | "too-large"
    | "budget";
  detail: string;
};

/**
 * Bounds on what one read may cost. A tree under --root or --snapshot is untrusted: a file may be a
 * FIFO (an open that never returns), a device node (opening some has side effects), a link loop, a
 * link out of the root, a sparse file of 10 GB or a directory of 300k entries. Each of those becomes
 * an unknown fact and a warning, never a hang.
 */
export const READ_LIMITS = {
  /** Bytes of one text file: /proc/cpuinfo of a 448-CPU machine is under 2 MB. */
  textBytes: 8 * 2 ** 20,
  /** Bytes of all text reads together: a large real host reads a few MB. */
  textBytesTotal: 128 * 2 ** 20,
  /** Entries of one directory: a host with thousands of VFs stays well below. */
  dirEntries: 16_384,
  /** Links followed while resolving one path (the kernel's own limit). */
  linkHops: 40,
  /**
   * Reads of all kinds by one HostFs: a detection of a large real host makes about 10k. The bound on
   * the whole walk, whatever shape a hostile tree gives it.
   */
  operations: 250_000,
};

export interface HostFs {
  readonly root: string;
  /** Text of a file, or null when it does not exist or cannot be read (recorded in problems). */
  readText(hostPath: string): Promise<string | null>;
  /** Raw bytes at an offset (device files such as /dev/cpu/0/msr), or null. */
  readBytes(hostPath: string, offset: number, length: number): Promise<Buffer | null>;
  /** Entries of a directory, sorted, or null when it does not exist. */
  readDir(hostPath: string): Promise<string[] | null>;
  /** Target of a symlink, resolved to an absolute host path, or null when not a link. */
  readLink(hostPath: string): Promise<string | null>;
  exists(hostPath: string): Promise<boolean>;
  /** What could not be read, for the report's warnings. */
  readonly problems: ReadProblem[];
}

const errCode = (e: unknown): string => (e as NodeJS.ErrnoException)?.code ?? "EUNKNOWN";

/** A path that must not be read: the reason goes into the report's warnings. */
class ReadRefused extends Error {
  constructor(
    readonly reason: Exclude<ReadProblem["reason"], "missing" | "unreadable" | "dangling">,
    detail: string,
  ) {
    super(detail);
  }
}

/** What a non-regular file is, for the warning. */
function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isSocket()) return "a socket";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  return "not a regular file";
}

// Device nodes whose reads have no side effects: the MSRs kvm-ok reads (bind-mounted /dev of a target).
const SAFE_DEVICE = /^\/dev\/cpu\/\d+\/msr$/;

type Cb<T> = (err: NodeJS.ErrnoException | null, value: T) => void;
const call = <T>(fn: (cb: Cb<T>) => void) =>
  new Promise<T>((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value))));

/**
 * Reads a whole file with open + read (+ a close nobody waits for): two thread-pool round trips
 * instead of readFile's four. sysfs attributes fit one page; larger files (cpuinfo) loop.
 */
async function readWhole(at: string, flags: number): Promise<string> {
  const fd = await call<number>((cb) => fs.open(at, flags, cb));
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (let size = 8192; ; size = Math.min(size * 2, 2 ** 20)) {
      const buf = Buffer.allocUnsafe(size);
      const n = await call<number>((cb) => fs.read(fd, buf, 0, size, null, cb));
      if (n > 0) chunks.push(buf.subarray(0, n));
      total += n;
      if (total > READ_LIMITS.textBytes)
        throw new ReadRefused("too-large", `larger than ${READ_LIMITS.textBytes} bytes`);
      if (n < size) break;
    }
    return Buffer.concat(chunks).toString("utf8");
  } finally {
    fs.close(fd, () => {});
  }
}

/** Where a host path ("/sys/...") lives on this machine when the machine's root is `root`. */
export function underRoot(root: string, hostPath: string): string {
  const normal = path.posix.resolve("/", hostPath);
  return root === "/" ? normal : path.join(root, normal);
}

// The kernel's views in a captured tree: nothing kvmstrap applies creates or removes files there, so
// one listing per directory stays true for the life of a HostFs. /etc and the rest are read afresh
// (a TUI session plans again after it applied).
const KERNEL_VIEWS = /^\/(sys|proc|dev|run\/udev)\//;

const kindsOf = (entries: fs.Dirent[]) =>
  new Map(entries.map((e) => [e.name, e.isFile() ? ("file" as const) : ("other" as const)]));

/** A listing within READ_LIMITS.dirEntries, sorted. */
function checkedListing(names: string[]): string[] {
  if (names.length > READ_LIMITS.dirEntries)
    throw new ReadRefused(
      "too-large",
      `${names.length} entries, more than the ${READ_LIMITS.dirEntries} a listing allows`,
    );
  return names.sort();
}

export class RootedHostFs implements HostFs {
  readonly problems: ReadProblem[] = [];
  readonly root: string;
  private readonly live: boolean;
  private operations = 0;
  private textBytes = 0;
  /** Host directory -> real directory, resolved once per directory. */
  private readonly dirs = new Map<string, Promise<string>>();
  /**
   * Real directory -> what its entries are ("file" for a regular file), listed once. A read under a
   * root consults it instead of an lstat per file: a regular file is opened straight away, an absent
   * one costs nothing, and only links and odd entries take the careful path.
   */
  private readonly listings = new Map<string, Promise<Map<string, "file" | "other"> | null>>();

  constructor(root = "/") {
    this.root = path.resolve(root);
    this.live = this.root === "/";
  }

  /** Maps a host path to the real path under the root, without resolving links. */
  real(hostPath: string): string {
    return underRoot(this.root, hostPath);
  }

  /** The real path to open: the directory resolved inside the root, the last component as is. */
  private async locate(hostPath: string): Promise<string> {
    const normal = path.posix.resolve("/", hostPath);
    if (this.live) return normal;
    const dir = path.posix.dirname(normal);
    return path.join(await this.realDir(dir), path.posix.basename(normal));
  }

  private realDir(hostDir: string): Promise<string> {
    let p = this.dirs.get(hostDir);
    if (!p) {
      p = this.resolveDir(hostDir);
      p.catch(() => {}); // a refused directory is reported by each read that needs it
      this.dirs.set(hostDir, p);
    }
    return p;
  }

  private async resolveDir(hostDir: string): Promise<string> {
    const naive = this.real(hostDir);
    try {
      // The kernel resolves most trees in one call; only a link that leaves the root (an absolute
      // link of the captured machine) or a loop needs the walk below.
      const resolved = await call<string>((cb) => fs.realpath.native(naive, cb));
      if (resolved === this.root || resolved.startsWith(`${this.root}/`)) return resolved;
    } catch (e) {
      const code = errCode(e);
      if (code === "ENOENT" || code === "ENOTDIR") return naive; // reads below it fail as they should
    }
    return this.real(await this.resolveInRoot(hostDir));
  }

  /**
   * Resolves every link of a host path against the root; returns the canonical host path. Throws
   * ReadRefused for a loop (more than READ_LIMITS.linkHops links) or a relative link that climbs
   * above the root. A missing component ends the walk: the rest is returned as is.
   */
  async resolveInRoot(hostPath: string): Promise<string> {
    let pending = path.posix.resolve("/", hostPath).split("/").filter(Boolean);
    let current = "/";
    for (let hops = 0; pending.length > 0; ) {
      const [name, ...rest] = pending;
      if (name === "..") {
        if (current === "/")
          throw new ReadRefused("outside-root", `a link leads above the machine root ${this.root}`);
        current = path.posix.dirname(current);
        pending = rest;
        continue;
      }
      const next = path.posix.join(current, name ?? "");
      let target: string | null = null;
      try {
        target = await call<string>((cb) => fs.readlink(this.real(next), cb));
      } catch {
        /* not a link, or missing */
      }
      if (target === null) {
        current = next;
        pending = rest;
        continue;
      }
      if (++hops > READ_LIMITS.linkHops)
        throw new ReadRefused("loop", `more than ${READ_LIMITS.linkHops} links (a symlink loop at ${next})`);
      // Keep ".." unresolved so a relative link that climbs above the root is seen, not clamped.
      const parts = target.split("/").filter((p) => p && p !== ".");
      if (target.startsWith("/")) current = "/";
      pending = [...parts, ...rest];
    }
    return current;
  }

  /** Counts the bytes of a text read; past the byte budget, later reads are refused like extra ones. */
  private counted(text: string): string {
    this.textBytes += text.length;
    if (this.textBytes > READ_LIMITS.textBytesTotal)
      this.operations = Math.max(this.operations, READ_LIMITS.operations);
    return text;
  }

  /** Counts one read; past the budget every read is refused, with one warning for all of them. */
  private overBudget(hostPath: string): boolean {
    // The live kernel's own views are trusted; a tree under a root is not.
    if (this.live || ++this.operations <= READ_LIMITS.operations) return false;
    if (this.operations === READ_LIMITS.operations + 1)
      this.problems.push({
        path: hostPath,
        reason: "budget",
        detail: `the read budget (${READ_LIMITS.operations} reads, ${READ_LIMITS.textBytesTotal} bytes) is spent: this and every later read were skipped`,
      });
    return true;
  }

  private note(hostPath: string, e: unknown): void {
    if (e instanceof ReadRefused) {
      this.problems.push({ path: hostPath, reason: e.reason, detail: e.message });
      return;
    }
    const code = errCode(e);
    if (code === "ENOENT" || code === "ENOTDIR") return; // absent is normal for partial snapshots
    this.problems.push({ path: hostPath, reason: "unreadable", detail: code });
  }

  async readText(hostPath: string): Promise<string | null> {
    if (this.overBudget(hostPath)) return null;
    try {
      if (this.live)
        return this.counted(await readWhole(path.posix.resolve("/", hostPath), fs.constants.O_RDONLY));
      // Under a root nothing is opened before lstat says it is a regular file of a sane size, and
      // links are resolved inside the root (O_NOFOLLOW keeps the kernel from following them to the
      // live machine if the tree changes in between; O_NONBLOCK keeps a FIFO from blocking the open).
      // A file its directory's listing showed as regular skips the lstat (a round trip per read on
      // the hot path); the read itself still stops at READ_LIMITS.textBytes.
      const located = await this.locate(hostPath);
      const listing = KERNEL_VIEWS.test(path.posix.resolve("/", hostPath))
        ? await this.listing(path.dirname(located))
        : null;
      const kind = listing?.get(path.basename(located));
      if (listing && kind === undefined) return null; // absent: normal in a partial snapshot
      const at = kind === "file" ? located : (await this.regularFile(hostPath)).at;
      return this.counted(
        await readWhole(at, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK),
      );
    } catch (e) {
      if (errCode(e) === "ENOENT") await this.noteDangling(hostPath);
      else this.note(hostPath, e);
      return null;
    }
  }

  /** The entries of a real directory under the root, once; null when it cannot be listed in bounds. */
  private listing(realDir: string): Promise<Map<string, "file" | "other"> | null> {
    let p = this.listings.get(realDir);
    if (!p) {
      p = new Promise((resolve) =>
        fs.readdir(realDir, { withFileTypes: true }, (err, entries) => {
          const code = err?.code;
          if (code === "ENOENT" || code === "ENOTDIR") resolve(new Map());
          else if (err || entries.length > READ_LIMITS.dirEntries) resolve(null);
          else resolve(kindsOf(entries));
        }),
      );
      this.listings.set(realDir, p);
    }
    return p;
  }

  /** lstat of the file a host path names under the root, links resolved; refuses non-regular files. */
  private async regularFile(hostPath: string, allowDevice = false): Promise<{ at: string; st: fs.Stats }> {
    let at = await this.locate(hostPath);
    let st = await call<fs.Stats>((cb) => fs.lstat(at, cb));
    if (st.isSymbolicLink()) {
      at = this.real(await this.resolveInRoot(hostPath));
      st = await call<fs.Stats>((cb) => fs.lstat(at, cb));
    }
    if (st.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    if (st.isFile() && st.size > READ_LIMITS.textBytes && !allowDevice)
      throw new ReadRefused("too-large", `larger than ${READ_LIMITS.textBytes} bytes (${st.size})`);
    const device =
      st.isCharacterDevice() && allowDevice && SAFE_DEVICE.test(path.posix.resolve("/", hostPath));
    if (!st.isFile() && !device) throw new ReadRefused("special", `${kindOf(st)}: not opened`);
    return { at, st };
  }

  async readBytes(hostPath: string, offset: number, length: number): Promise<Buffer | null> {
    if (this.overBudget(hostPath)) return null;
    let fd: number | undefined;
    try {
      const at = this.live ? path.posix.resolve("/", hostPath) : (await this.regularFile(hostPath, true)).at;
      const flags = this.live ? fs.constants.O_RDONLY : fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;
      fd = await call<number>((cb) => fs.open(at, flags, cb));
      const handle = fd;
      const buf = Buffer.alloc(length);
      const bytesRead = await call<number>((cb) => fs.read(handle, buf, 0, length, offset, cb));
      return bytesRead === length ? buf : null;
    } catch (e) {
      this.note(hostPath, e);
      return null;
    } finally {
      if (fd !== undefined) fs.close(fd, () => {});
    }
  }

  async readDir(hostPath: string): Promise<string[] | null> {
    if (this.overBudget(hostPath)) return null;
    try {
      if (this.live) return checkedListing(await call<string[]>((cb) => fs.readdir(this.real(hostPath), cb)));
      const at = await this.realDir(path.posix.resolve("/", hostPath));
      const entries = await call<fs.Dirent[]>((cb) => fs.readdir(at, { withFileTypes: true }, cb));
      const names = checkedListing(entries.map((e) => e.name));
      if (!this.listings.has(at)) this.listings.set(at, Promise.resolve(kindsOf(entries)));
      return names;
    } catch (e) {
      this.note(hostPath, e);
      return null;
    }
  }

  async readLink(hostPath: string): Promise<string | null> {
    if (this.overBudget(hostPath)) return null;
    try {
      const target = await call<string>(async (cb) => fs.readlink(await this.locate(hostPath), cb));
      return path.posix.resolve(path.posix.dirname(path.posix.resolve("/", hostPath)), target);
    } catch {
      return null;
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    if (this.overBudget(hostPath)) return false;
    try {
      const at = await this.locateFollowing(hostPath);
      return await new Promise((resolve) => fs.stat(at, (err) => resolve(!err)));
    } catch (e) {
      this.note(hostPath, e);
      return false;
    }
  }

  /** Like locate, but a link in the last component is resolved inside the root too. */
  private async locateFollowing(hostPath: string): Promise<string> {
    const at = await this.locate(hostPath);
    if (this.live) return at;
    const isLink = await new Promise<boolean>((resolve) =>
      fs.lstat(at, (err, st) => resolve(!err && st.isSymbolicLink())),
    );
    return isLink ? this.real(await this.resolveInRoot(hostPath)) : at;
  }

  /** A read that failed with ENOENT on a symlink means the link dangles: worth a warning. */
  private async noteDangling(hostPath: string): Promise<void> {
    try {
      const at = await this.locate(hostPath);
      const target = await call<string>((cb) => fs.readlink(at, cb));
      this.problems.push({ path: hostPath, reason: "dangling", detail: `link to ${target} leads nowhere` });
    } catch {
      /* plain missing file */
    }
  }
}
