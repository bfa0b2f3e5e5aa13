// The one atomic write: a temporary file beside the target, written, chmod'ed and fsync'ed, renamed
// over the target, and the directory fsync'ed, so a crash or a kill at any instant leaves either the
// old file or the new one, never a torn one. Temporary names carry the writer's pid, so a later
// writer can tell a dead writer's leftovers from a live one's (cleanStaleTemps), and a random tail,
// so two writes of one file in one process never share a temporary file.
import { randomBytes } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";

export const TMP_MARK = ".kvmstrap-tmp-";

const code = (e: unknown) => (e as NodeJS.ErrnoException)?.code;

/** Writes a real path atomically (tmp + fsync + rename + directory fsync); creates parent dirs. */
export async function writeFileAtomic(
  realPath: string,
  content: string | Uint8Array,
  mode = 0o644,
): Promise<void> {
  const dir = path.dirname(realPath);
  await fs.mkdir(dir, { recursive: true });
  const tmp = `${realPath}${TMP_MARK}${process.pid}.${randomBytes(4).toString("hex")}`;
  const handle = await fs.open(tmp, "w", mode);
  try {
    await handle.writeFile(content);
    await handle.chmod(mode); // open's mode is filtered by the umask
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fs.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await fs.rename(tmp, realPath);
  await syncDir(dir);
}

/** The temporary name for a file produced by a stream (an archive, an ISO): publish it when complete. */
export const tempPathFor = (realPath: string): string => `${realPath}${TMP_MARK}${process.pid}`;

/** Moves a complete temporary file into place: fsync, rename, directory fsync. */
export async function publishFile(tmp: string, realPath: string): Promise<void> {
  const handle = await fs.open(tmp, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, realPath);
  await syncDir(path.dirname(realPath));
}

export async function syncDir(dir: string): Promise<void> {
  const d = await fs.open(dir, "r");
  try {
    await d.sync();
  } catch {
    /* some filesystems refuse fsync on directories; the rename is still atomic */
  } finally {
    await d.close();
  }
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own leftovers are stale by definition between writes
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === "EPERM";
  }
}

/** Removes "<base>.kvmstrap-tmp-<pid>" files next to realPath whose writer is gone. */
export async function cleanStaleTemps(realPath: string): Promise<number> {
  const dir = path.dirname(realPath);
  const prefix = `${path.basename(realPath)}${TMP_MARK}`;
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split(".")[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) continue;
    await fs.rm(path.join(dir, name), { force: true });
    removed++;
  }
  if (removed) await syncDir(dir);
  return removed;
}
