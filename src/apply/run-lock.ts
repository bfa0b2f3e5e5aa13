// The per-run lock: an exclusive file with the holder's pid and start time, so the apply process,
// the network watchdog, `kvmstrap confirm` and `kvmstrap undo` never act on one run at once. A lock
// whose holder is gone (killed mid-revert) is taken over.
import { mkdir, open, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { StateError } from "./journal.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Field 22 of /proc/PID/stat (start time in clock ticks after boot): a pid reused later differs. */
export async function processStartTime(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state): a zombie or dead task is gone for our purpose.
    if (fields[0] === "Z" || fields[0] === "X") return null;
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether the process still runs (and is the same process, when its start time is known). */
export async function processAlive(pid: number, startTime?: string | null): Promise<boolean> {
  const t = await processStartTime(pid);
  return t !== null && (startTime == null || t === startTime);
}

export async function currentOwner(): Promise<{ pid: number; startTime: string | null }> {
  return { pid: process.pid, startTime: await processStartTime(process.pid) };
}

/** What newRunId makes (and nothing that could leave the runs directory). */
const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9.:_-]*$/;
const lockFile = (stateDir: string, runId: string) => path.join(stateDir, "runs", `${runId}.lock`);

/**
 * Runs fn holding the run's lock: an exclusive file with the holder's pid and start time. A lock
 * whose holder is gone (killed mid-revert) is taken over.
 */
export async function withRunLock<T>(stateDir: string, runId: string, fn: () => Promise<T>): Promise<T> {
  if (!RUN_ID.test(runId)) throw new StateError(`"${runId}" is not a run id`);
  const file = lockFile(stateDir, runId);
  await mkdir(path.dirname(file), { recursive: true });
  const me = await currentOwner();
  for (;;) {
    try {
      const fh = await open(file, "wx", 0o600);
      await fh.writeFile(`${me.pid} ${me.startTime ?? "-"}\n`);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const [pid, start] = (await readFile(file, "utf8").catch(() => "")).trim().split(" ");
      const holder = Number(pid);
      // An empty lock is one being written right now, unless its writer died between the two steps.
      const age = Date.now() - ((await stat(file).catch(() => null))?.mtimeMs ?? Date.now());
      if (!pid && age > 5_000) await rm(file, { force: true });
      // A dead holder's lock is stale.
      else if (
        Number.isInteger(holder) &&
        holder > 0 &&
        !(await processAlive(holder, start === "-" ? null : start))
      )
        await rm(file, { force: true });
      else await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
