// TargetFs: the write side of the host ports, rooted at a directory ("/" for the real host, a
// temporary directory in tests and for rendering). Paths are host paths ("/etc/modprobe.d/kvm.conf").
//
// Files are replaced atomically: the content goes to "<path>.kvmstrap-tmp-<pid>", is fsynced, renamed
// over the path, and the directory is fsynced, so a crash at any instant leaves either the old or the
// new file, never half of one. The first time kvmstrap replaces or removes a file it keeps the
// original, named "<path>.kvmstrap-orig" through this port but stored under BACKUP_DIR (keyed by the
// path), never beside the file: network stacks and modprobe read every file of their directories
// (ifupdown2's "source interfaces.d/*", NetworkManager's system-connections), so a copy there would
// be read as configuration. sysfs attributes cannot be renamed over: they are written in place.
import * as fs from "node:fs/promises";
import path from "node:path";
import { cleanStaleTemps, syncDir, writeFileAtomic } from "../core/atomic-write.js";
import { underRoot } from "./fs.js";

export const ORIG_SUFFIX = ".kvmstrap-orig";
/** Where the originals live, outside every directory a service reads configuration from. */
export const BACKUP_DIR = "/var/lib/kvmstrap/backup";

/** The host path holding the original of hostPath ("<path>.kvmstrap-orig" names the same file). */
export function originalPathOf(hostPath: string): string {
  const normal = path.posix.resolve("/", hostPath);
  const file = normal.endsWith(ORIG_SUFFIX) ? normal.slice(0, -ORIG_SUFFIX.length) : normal;
  return `${BACKUP_DIR}${file}`;
}

export interface WriteOptions {
  /** Keep the file being replaced as <path>.kvmstrap-orig when none exists yet (default true). */
  keepOriginal?: boolean;
}

export interface TargetFs {
  readonly root: string;
  /** Text of a file, or null when it does not exist. */
  read(hostPath: string): Promise<string | null>;
  /** Permission bits of a file, or null when it does not exist. */
  mode(hostPath: string): Promise<number | null>;
  writeAtomic(hostPath: string, content: string, mode: number, options?: WriteOptions): Promise<void>;
  /** Removes a file (absent is fine); keeps it as <path>.kvmstrap-orig unless told otherwise. */
  remove(hostPath: string, options?: WriteOptions): Promise<void>;
  /** Removes a directory if it is empty; returns whether it did. */
  removeEmptyDir(hostPath: string): Promise<boolean>;
  writeSysfs(hostPath: string, value: string): Promise<void>;
  exists(hostPath: string): Promise<boolean>;
  /** Removes temporary files a killed writer left next to hostPath; returns how many. */
  cleanStale(hostPath: string): Promise<number>;
  /** The real path under the root. */
  real(hostPath: string): string;
}

const code = (e: unknown) => (e as NodeJS.ErrnoException)?.code;

export class RootedTargetFs implements TargetFs {
  readonly root: string;
  private readonly live: boolean;

  constructor(root = "/") {
    this.root = path.resolve(root);
    this.live = this.root === "/";
  }

  real(hostPath: string): string {
    const named = hostPath.endsWith(ORIG_SUFFIX) ? originalPathOf(hostPath) : hostPath;
    return underRoot(this.root, named);
  }

  /** Under a root, refuses a path whose existing directories lead outside it through a symlink. */
  private async inside(hostPath: string): Promise<string> {
    const at = this.real(hostPath);
    if (this.live) return at;
    let dir = path.dirname(at);
    for (;;) {
      try {
        const resolved = await fs.realpath(dir);
        const rootReal = await fs.realpath(this.root);
        if (resolved === rootReal || resolved.startsWith(`${rootReal}/`)) return at;
        throw new Error(`${hostPath}: a symlink leads outside the target root ${this.root}`);
      } catch (e) {
        if (code(e) !== "ENOENT") throw e;
        const up = path.dirname(dir);
        if (up === dir) return at;
        dir = up;
      }
    }
  }

  async read(hostPath: string): Promise<string | null> {
    try {
      return await fs.readFile(await this.inside(hostPath), "utf8");
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return null;
      throw e;
    }
  }

  async mode(hostPath: string): Promise<number | null> {
    try {
      return (await fs.stat(await this.inside(hostPath))).mode & 0o7777;
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return null;
      throw e;
    }
  }

  async exists(hostPath: string): Promise<boolean> {
    try {
      await fs.lstat(await this.inside(hostPath));
      return true;
    } catch {
      return false;
    }
  }

  async writeAtomic(hostPath: string, content: string, mode: number, options: WriteOptions = {}) {
    const at = await this.inside(hostPath);
    await this.cleanStaleAt(at);
    if (options.keepOriginal !== false) await this.keepOriginal(at, false);
    await writeFileAtomic(at, content, mode);
  }

  async remove(hostPath: string, options: WriteOptions = {}): Promise<void> {
    const at = await this.inside(hostPath);
    if (options.keepOriginal !== false && (await this.keepOriginal(at, true))) return;
    try {
      await fs.unlink(at);
    } catch (e) {
      if (code(e) !== "ENOENT") throw e;
      return;
    }
    await syncDir(path.dirname(at));
    // Undo drops an original it made: the directories holding it go too, so the tree is as before.
    if (hostPath.endsWith(ORIG_SUFFIX)) await this.pruneEmptyParents(at);
  }

  private async pruneEmptyParents(at: string): Promise<void> {
    for (
      let dir = path.dirname(at);
      dir !== this.root && dir !== path.dirname(dir);
      dir = path.dirname(dir)
    ) {
      try {
        await fs.rmdir(dir);
      } catch {
        return;
      }
    }
  }

  /** Saves the file at `at` as its original if none exists; by rename when the file is going away. */
  private async keepOriginal(at: string, moving: boolean): Promise<boolean> {
    const orig = this.originalOf(at);
    try {
      await fs.lstat(orig);
      return false;
    } catch (e) {
      if (code(e) !== "ENOENT") throw e;
    }
    let st: Awaited<ReturnType<typeof fs.lstat>>;
    try {
      st = await fs.lstat(at);
    } catch (e) {
      if (code(e) === "ENOENT" || code(e) === "ENOTDIR") return false;
      throw e;
    }
    if (!st.isFile()) return false;
    if (moving) {
      await fs.mkdir(path.dirname(orig), { recursive: true });
      await fs.rename(at, orig);
      await syncDir(path.dirname(at));
      await syncDir(path.dirname(orig));
    } else {
      await writeFileAtomic(orig, await fs.readFile(at), st.mode & 0o7777);
    }
    return true;
  }

  async removeEmptyDir(hostPath: string): Promise<boolean> {
    const at = await this.inside(hostPath);
    if (at === this.root || at === "/") return false;
    try {
      await fs.rmdir(at);
      return true;
    } catch {
      return false;
    }
  }

  async writeSysfs(hostPath: string, value: string): Promise<void> {
    const at = await this.inside(hostPath);
    // No O_CREAT and no O_TRUNC: sysfs attributes exist already; a missing one is an error.
    const handle = await fs.open(at, "r+");
    try {
      await handle.write(value.endsWith("\n") ? value : `${value}\n`, 0);
      if (!this.live) await handle.truncate((value.endsWith("\n") ? value : `${value}\n`).length);
    } finally {
      await handle.close();
    }
  }

  async cleanStale(hostPath: string): Promise<number> {
    return this.cleanStaleAt(await this.inside(hostPath));
  }

  /** A writer killed while copying the original leaves "<original>.kvmstrap-tmp-N" too. */
  private async cleanStaleAt(at: string): Promise<number> {
    return (await cleanStaleTemps(at)) + (await cleanStaleTemps(this.originalOf(at)));
  }

  /** The real path of the original kept for the real path `at`. */
  private originalOf(at: string): string {
    const host = this.live ? at : `/${path.relative(this.root, at)}`;
    return underRoot(this.root, originalPathOf(host));
  }
}
