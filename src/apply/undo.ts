// undo: puts back what the last applied run changed, newest first: a file gets its previous content
// (or disappears if it did not exist, along with the .kvmstrap-orig copy and the directories that run
// created), a sysfs attribute its previous value, a command runs its undo argv. Journaled per action,
// so an interrupted undo can simply be run again.
import type { Action } from "../plan/actions.js";
import { EventBus, now } from "./events.js";
import { Journal, type JournalAction, type JournalRun, StateError } from "./journal.js";
import { withRunLock } from "./run-lock.js";
import { describe, inverseOf, type Operation, revert, type StepContext } from "./steps.js";

export interface UndoOptions extends StepContext {
  stateDir: string;
  bus?: EventBus;
  dryRun?: boolean;
  /** Undo this run instead of the newest undoable one (a failed VM deploy undoes its own run). */
  runId?: string;
}

export interface UndoResult {
  runId: string;
  status: "undone" | "failed" | "dry-run";
  operations: Operation[];
  durationMs: number;
  error?: string;
}

const undoable = (run: JournalRun) =>
  run.phase !== "undone" &&
  !run.supersededBy &&
  run.actions.some((a) => a.status === "done" || a.status === "started");

/** The newest run that changed something and is not undone yet. */
export async function lastUndoableRun(journal: Journal): Promise<JournalRun | null> {
  const runs = (await Promise.all((await journal.runIds()).map((id) => journal.load(id))))
    .filter((r): r is JournalRun => r !== null)
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.runId.localeCompare(a.runId));
  return runs.find(undoable) ?? null;
}

/** A command that may not have run (killed while it ran) is not undone: its undo could do harm. */
export function isRevertible(a: Action, entry: JournalAction): boolean {
  return !(a.kind === "run-command" && entry.status !== "done");
}

export async function undoLastRun(options: UndoOptions): Promise<UndoResult> {
  const bus = options.bus ?? new EventBus();
  const journal = new Journal(options.stateDir);
  const run = options.runId ? await journal.load(options.runId) : await lastUndoableRun(journal);
  if (!run || (options.runId && !undoable(run)))
    throw new StateError(
      `nothing to undo under ${options.stateDir}${options.runId ? ` for run ${options.runId}` : ""}`,
    );
  // A dry run changes nothing and takes no lock; a real undo holds the run's lock, so it never races
  // the network watchdog's revert of the same run, and works on the journal as it is under the lock.
  if (options.dryRun) return undoRun(run, journal, bus, options);
  return withRunLock(options.stateDir, run.runId, async () =>
    undoRun((await journal.load(run.runId)) ?? run, journal, bus, options),
  );
}

async function undoRun(
  run: JournalRun,
  journal: Journal,
  bus: EventBus,
  options: UndoOptions,
): Promise<UndoResult> {
  const t0 = Date.now();
  const { runId } = run;
  const dryRun = Boolean(options.dryRun);
  const operations: Operation[] = [];
  bus.emit({ type: "run", phase: "STARTED", runId, operation: "undo", dryRun, time: now() });
  const counts = { done: 0, skipped: 0, failed: 0 };
  for (let j = run.actions.length - 1; j >= 0; j--) {
    const entry = run.actions[j];
    const a = run.plan.actions[j] as Action | undefined;
    if (!entry || !a || (entry.status !== "done" && entry.status !== "started")) continue;
    if (!isRevertible(a, entry)) continue;
    const inverse = inverseOf(a, entry.before);
    const detail = inverse ? `undo: ${describeOp(inverse)}` : `undo: nothing to do for ${describe(a)}`;
    if (inverse) operations.push(inverse);
    if (dryRun) {
      bus.emit({
        type: "step",
        phase: "skipped",
        id: a.id,
        summary: a.summary,
        detail,
        dryRun,
        runId,
        time: now(),
      });
      continue;
    }
    const ts = Date.now();
    bus.emit({ type: "step", phase: "started", id: a.id, summary: a.summary, detail, runId, time: now() });
    try {
      await revert(a, entry.before, options);
      await journal.markReverted(run, a.id);
      counts.done++;
      bus.emit({
        type: "step",
        phase: "finished",
        id: a.id,
        summary: a.summary,
        detail,
        durationMs: Date.now() - ts,
        runId,
        time: now(),
      });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      counts.failed++;
      bus.emit({ type: "step", phase: "failed", id: a.id, summary: a.summary, error, runId, time: now() });
      const durationMs = Date.now() - t0;
      bus.emit({
        type: "run",
        phase: "FAILED",
        runId,
        operation: "undo",
        time: now(),
        error,
        durationMs,
        counts,
      });
      return { runId, status: "failed", operations, durationMs, error: `${a.id}: ${error}` };
    }
  }
  if (!dryRun) await journal.setPhase(run, "undone");
  const durationMs = Date.now() - t0;
  bus.emit({
    type: "run",
    phase: "SUCCEEDED",
    runId,
    operation: "undo",
    dryRun,
    time: now(),
    durationMs,
    counts,
  });
  return { runId, status: dryRun ? "dry-run" : "undone", operations, durationMs };
}

function describeOp(op: Operation): string {
  switch (op.kind) {
    case "write-file":
      return `restore ${op.path} (${Buffer.byteLength(op.content)} bytes)`;
    case "remove-file":
      return `remove ${op.path}`;
    case "write-sysfs":
      return `write "${op.value}" to ${op.path}`;
    case "run-command":
      return `run ${op.argv.join(" ")}`;
    case "vm-overlay":
    case "vm-seed":
      return `create ${op.path}`;
    case "libvirt":
      return `${op.op.replace(/-(domain|network)$/, "")} the ${op.op.endsWith("-network") ? "network" : "domain"} ${op.name}`;
  }
}
