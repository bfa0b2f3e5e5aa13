// The confirmation channel for network changes: a file, <stateDir>/confirm, holding the run id.
// `kvmstrap confirm` (from another shell, an SSH session or the TUI) writes it; the engine polls it
// while the confirm-or-revert timer runs. A confirmation names its run, so a stale file left by an
// earlier run never confirms a later one.
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../host/target.js";
import { Journal, StateError } from "./journal.js";

export const confirmFile = (stateDir: string) => path.join(stateDir, "confirm");

/**
 * Confirms the network changes of `runId` (default: the latest run, which must be awaiting
 * confirmation). Returns the run id confirmed.
 */
export async function confirmRun(stateDir: string, runId?: string): Promise<string> {
  let id = runId;
  if (!id) {
    const latest = await new Journal(stateDir).latestRun();
    if (latest?.phase !== "awaiting-confirm") {
      throw new StateError(
        latest
          ? `the latest run ${latest.runId} is ${latest.phase}, not awaiting confirmation`
          : `no apply run found under ${stateDir}`,
      );
    }
    id = latest.runId;
  }
  await writeFileAtomic(confirmFile(stateDir), `${id}\n`, 0o600);
  return id;
}

export type ConfirmOutcome = "confirmed" | "declined" | "timeout";

/**
 * Waits until the run is confirmed (file or callback), declined (callback says false), or the
 * deadline passes. A matching confirm file is consumed.
 */
export async function awaitConfirmation(options: {
  stateDir: string;
  runId: string;
  deadline: Date;
  waitForConfirm?: () => Promise<boolean>;
  pollMs?: number;
}): Promise<ConfirmOutcome> {
  const file = confirmFile(options.stateDir);
  const pollMs = options.pollMs ?? 200;
  let answer: ConfirmOutcome | null = null;
  options.waitForConfirm?.().then(
    (ok) => {
      answer ??= ok ? "confirmed" : "declined";
    },
    () => {},
  );
  for (;;) {
    try {
      if ((await readFile(file, "utf8")).trim() === options.runId) {
        await rm(file, { force: true });
        return "confirmed";
      }
    } catch {
      /* not confirmed yet */
    }
    if (answer) return answer;
    const left = options.deadline.getTime() - Date.now();
    if (left <= 0) return "timeout";
    await new Promise((r) => setTimeout(r, Math.min(pollMs, left)));
  }
}
