// HostFs: the read-only port onto /proc, /sys, /dev and /etc of one machine, rooted at a directory.
// Paths given to it are always host paths ("/sys/class/net"); the root is a detail of the port, so
// a snapshot and the live host read the same. Under a root other than "/", symlinks are resolved
// inside the root: an absolute link in a snapshot (etc/mtab -> /proc/self/mounts) must lead to the
// snapshot's file, never to the live machine's.
//
// I/O is asynchronous and uses the callback API: fs/promises' readFile costs four thread-pool round
// trips per file, about 4x slower on the hundreds of small sysfs reads one detection makes.
import * as fs from "node:fs";
import path from "node:path";

export type ReadProblem = { path: string; reason: "missing" | "dangling" | "unreadable"; detail: string };

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
const MAX_LINK_HOPS = 40;

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
    for (let size = 8192; ; size *= 2) {
      const buf = Buffer.allocUnsafe(size);
      const n = await call<number>((cb) => fs.read(fd, buf, 0, size, null, cb));
      if (n > 0) chunks.push(buf.subarray(0, n));
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

export class RootedHostFs implements HostFs {
  readonly problems: ReadProblem[] = [];
  readonly root: string;
  private readonly live: boolean;
  /** Host directory -> real directory, resolved once per directory. */
  private readonly dirs = new Map<string, Promise<string>>();

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
      this.dirs.set(hostDir, p);
    }
    return p;
  }

  private async resolveDir(hostDir: string): Promise<string> {
    const naive = this.real(hostDir);
    try {
      const resolved = await call<string>((cb) => fs.realpath.native(naive, cb));
      if (resolved === this.root || resolved.startsWith(`${this.root}/`)) return resolved;
    } catch {
      return naive; // missing: reads below it fail with ENOENT as they should
    }
    return this.real(await this.resolveInRoot(hostDir));
  }

  /** Resolves every link of a host path against the root; returns the canonical host path. */
  async resolveInRoot(hostPath: string): Promise<string> {
    let pending = path.posix.resolve("/", hostPath).split("/").filter(Boolean);
    let current = "/";
    for (let hops = 0; pending.length > 0; ) {
      const [name, ...rest] = pending;
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
      if (++hops > MAX_LINK_HOPS) return next;
      const base = target.startsWith("/") ? "/" : current;
      pending = [...path.posix.resolve(base, target).split("/").filter(Boolean), ...rest];
      current = "/";
    }
    return current;
  }

  private note(hostPath: string, e: unknown): void {
    const code = errCode(e);
    if (code === "ENOENT" || code === "ENOTDIR") return; // absent is normal for partial snapshots
    this.problems.push({ path: hostPath, reason: "unreadable", detail: code });
  }

  async readText(hostPath: string): Promise<string | null> {
    const at = await this.locate(hostPath);
    // Under a root, the last component must not be followed natively either: O_NOFOLLOW makes an
    // absolute link fail with ELOOP, and it is then resolved inside the root.
    const flag = this.live ? fs.constants.O_RDONLY : fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW;
    try {
      return await readWhole(at, flag);
    } catch (e) {
      if (errCode(e) === "ELOOP" && !this.live) return this.readText(await this.resolveInRoot(hostPath));
      if (errCode(e) === "ENOENT") await this.noteDangling(hostPath, at);
      else this.note(hostPath, e);
      return null;
    }
  }

  async readBytes(hostPath: string, offset: number, length: number): Promise<Buffer | null> {
    const at = await this.locateFollowing(hostPath);
    let fd: number | undefined;
    try {
      fd = await call<number>((cb) => fs.open(at, "r", cb));
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
    const at = this.live ? this.real(hostPath) : await this.realDir(path.posix.resolve("/", hostPath));
    try {
      return (await call<string[]>((cb) => fs.readdir(at, cb))).sort();
    } catch (e) {
      this.note(hostPath, e);
      return null;
    }
  }

  async readLink(hostPath: string): Promise<string | null> {
    try {
      const target = await call<string>(async (cb) => fs.readlink(await this.locate(hostPath), cb));
      return path.posix.resolve(path.posix.dirname(path.posix.resolve("/", hostPath)), target);
    } catch {
      return null;
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    const at = await this.locateFollowing(hostPath);
    return new Promise((resolve) => fs.stat(at, (err) => resolve(!err)));
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
  private async noteDangling(hostPath: string, at: string): Promise<void> {
    try {
      const target = await call<string>((cb) => fs.readlink(at, cb));
      this.problems.push({ path: hostPath, reason: "dangling", detail: `link to ${target} leads nowhere` });
    } catch {
      /* plain missing file */
    }
  }
}
