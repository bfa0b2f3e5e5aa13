// The confirmation of network changes. `kvmstrap confirm` (from another shell, an SSH session or the
// TUI) journals it under the run's lock (network-gate.ts) and stops the run's watchdog; the apply
// process, if it still runs, sees it in the journal and goes on. A confirmation names its run, so it
// never confirms a later one, and a run already reverted cannot be confirmed.
import { ExecaRunner } from "../host/commands.js";
import { Journal, StateError } from "./journal.js";
import { recordConfirmation, unconfirmedNetwork } from "./network-gate.js";
import { disarmWatchdog } from "./watchdog.js";

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
  const run = await recordConfirmation(stateDir, id);
  await disarmWatchdog(run.watchdog, new ExecaRunner()).catch(() => {});
  return id;
}

export type ConfirmOutcome = "confirmed" | "declined" | "timeout" | "reverted";

/**
 * Waits until the run's gate is confirmed (journaled by `kvmstrap confirm`, or "yes" from the
 * callback), declined (the callback says false), reverted by the watchdog, or the deadline passes.
 */
export async function awaitConfirmation(options: {
  stateDir: string;
  runId: string;
  gate: number;
  deadline: Date;
  waitForConfirm?: () => Promise<boolean>;
  pollMs?: number;
}): Promise<ConfirmOutcome> {
  const journal = new Journal(options.stateDir);
  const pollMs = options.pollMs ?? 200;
  let answer: "yes" | "no" | null = null;
  options.waitForConfirm?.().then(
    (ok) => {
      answer ??= ok ? "yes" : "no";
    },
    () => {},
  );
  for (;;) {
    const run = await journal.load(options.runId);
    if (run?.gates?.includes(options.gate)) return "confirmed";
    if (!run || unconfirmedNetwork(run).length === 0) return "reverted";
    if (answer === "no") return "declined";
    if (answer === "yes") {
      try {
        await recordConfirmation(options.stateDir, options.runId);
        return "confirmed";
      } catch (e) {
        if (!(e instanceof StateError)) throw e;
        return "reverted";
      }
    }
    const left = options.deadline.getTime() - Date.now();
    if (left <= 0) return "timeout";
    await new Promise((r) => setTimeout(r, Math.min(pollMs, left)));
  }
}
