// The confirm-or-revert decision for network changes, shared by the three parties that may take it:
// the apply process (its own timer, or "yes"/"no" at its prompt), the watchdog that outlives it, and
// `kvmstrap confirm`. Each decision is taken under the run's lock, on the journal as it is on disk,
// so whichever comes first wins and the others find its result: a change is never both kept and
// reverted, and a revert runs once.
import type { Action } from "../plan/actions.js";
import { type EventBus, now } from "./events.js";
import { Journal, type JournalRun, StateError } from "./journal.js";
import { processAlive, withRunLock } from "./run-lock.js";
import { revert, type StepContext } from "./steps.js";
import { isRevertible } from "./undo.js";

export { currentOwner, processAlive, processStartTime, withRunLock } from "./run-lock.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Index of the last action of the contiguous network group that holds action j. */
function groupEnd(actions: readonly Action[], j: number): number {
  let end = j;
  while (actions[end + 1]?.effect === "network") end++;
  return end;
}

/** Network actions that changed something and whose group's confirmation is not recorded. */
export function unconfirmedNetwork(run: JournalRun): number[] {
  const out: number[] = [];
  run.plan.actions.forEach((a, j) => {
    const entry = run.actions[j];
    if (a.effect !== "network" || !entry || (entry.status !== "done" && entry.status !== "started")) return;
    if (!(run.gates ?? []).includes(groupEnd(run.plan.actions, j))) out.push(j);
  });
  return out;
}

/**
 * Records the confirmation of the run's network changes (`kvmstrap confirm`, "yes" at the prompt).
 * The run must await confirmation; one already reverted cannot be confirmed any more.
 */
export async function recordConfirmation(stateDir: string, runId: string): Promise<JournalRun> {
  return withRunLock(stateDir, runId, async () => {
    const journal = new Journal(stateDir);
    const run = await journal.load(runId);
    if (!run) throw new StateError(`no apply run ${runId} under ${stateDir}`);
    if (run.phase !== "awaiting-confirm" || run.pendingGate === undefined) {
      const why = run.phase === "reverted" ? `: ${run.error ?? "its network changes were reverted"}` : "";
      throw new StateError(`run ${runId} is ${run.phase}, not awaiting confirmation${why}`);
    }
    run.gates = [...(run.gates ?? []), run.pendingGate];
    delete run.pendingGate;
    await journal.setPhase(run, "running");
    return run;
  });
}

export type RevertOutcome = "reverted" | "confirmed" | "nothing-to-revert";

/**
 * Puts back every unconfirmed network change of the run, newest first, with the journal's inverses
 * (the code undo uses), and journals the run as "reverted". Idempotent: a second call, or one that
 * comes after a confirmation, changes nothing.
 */
export async function revertUnconfirmed(
  ctx: StepContext & { stateDir: string; bus: EventBus },
  runId: string,
  by: "apply" | "watchdog",
  reason: string,
  /** The gate the caller waited on: "confirmed" when its confirmation won the race. */
  gate?: number,
): Promise<RevertOutcome> {
  return withRunLock(ctx.stateDir, runId, async () => {
    const journal = new Journal(ctx.stateDir);
    const run = await journal.load(runId);
    if (!run) return "nothing-to-revert";
    if (gate !== undefined && (run.gates ?? []).includes(gate)) return "confirmed";
    const todo = unconfirmedNetwork(run);
    if (todo.length === 0) return "nothing-to-revert";
    const reverted: string[] = [];
    let failed = false;
    for (const j of todo.reverse()) {
      const a = run.plan.actions[j] as Action;
      const entry = run.actions[j];
      if (!entry) continue;
      if (!isRevertible(a, entry)) {
        await journal.markReverted(run, a.id);
        continue;
      }
      try {
        await revert(a, entry.before, ctx);
        await journal.markReverted(run, a.id);
        reverted.push(a.id);
      } catch (e) {
        failed = true;
        ctx.bus.emit({
          type: "step",
          phase: "failed",
          id: a.id,
          summary: a.summary,
          error: `revert: ${message(e)}`,
          runId,
          time: now(),
        });
      }
    }
    await journal.setPhase(run, failed ? "failed" : "reverted", { error: reason, revertedBy: by });
    ctx.bus.emit({ type: "reverted", reason, ids: reverted, time: now(), runId });
    return "reverted";
  });
}

export type WatchOutcome = RevertOutcome | "gone" | "not-watching" | "replaced";

/**
 * The watchdog's loop: until the run's network changes are confirmed or gone, wait; revert them at
 * the confirm deadline, or, while the window has not opened yet, once the fallback deadline passed
 * and the apply process is gone (killed in the middle of the network group).
 */
export async function watchNetworkGate(
  ctx: StepContext & { stateDir: string; bus: EventBus },
  runId: string,
  pollMs = 250,
): Promise<WatchOutcome> {
  const journal = new Journal(ctx.stateDir);
  const ownerAlive = async (run: JournalRun) =>
    Boolean(run.owner && (await processAlive(run.owner.pid, run.owner.startTime)));
  for (;;) {
    const run = await journal.load(runId).catch(() => null);
    if (!run) return "gone";
    if (run.phase !== "running" && run.phase !== "awaiting-confirm") return "not-watching";
    const armed = run.watchdog;
    if (armed && (run.gates ?? []).includes(armed.gate)) return "confirmed";
    if (armed?.kind === "process" && armed.pid !== undefined && armed.pid !== process.pid) return "replaced";
    const t = Date.now();
    if (unconfirmedNetwork(run).length === 0) {
      // Armed before the group's first change: wait for it, unless the apply process died first.
      if (!(await ownerAlive(run))) return "nothing-to-revert";
    } else if (run.phase === "awaiting-confirm" && run.deadline && t >= Date.parse(run.deadline)) {
      const who = (await ownerAlive(run)) ? "" : "; the apply process is gone";
      const reason = `no confirmation by ${run.deadline}: reverted by the watchdog${who}`;
      return revertUnconfirmed(ctx, runId, "watchdog", reason, run.pendingGate);
    } else if (
      run.phase === "running" &&
      armed &&
      t >= Date.parse(armed.fallbackDeadline) &&
      !(await ownerAlive(run))
    ) {
      const reason =
        "the apply process stopped in the middle of the network changes: reverted by the watchdog";
      return revertUnconfirmed(ctx, runId, "watchdog", reason);
    }
    await sleep(pollMs);
  }
}
