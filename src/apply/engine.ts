// apply: the only code with side effects, and every effect goes through the ports (TargetFs,
// CommandRunner). A plan is carried out action by action, journaled before and after each one, so a
// run killed at any instant can be resumed (or simply re-run) to the same end state:
//   - an action already in place is skipped (file content equal, sysfs value equal, `check` exits 0),
//     so a second apply changes nothing;
//   - a contiguous group of "network" actions is followed by a confirm-or-revert timer: unless
//     `kvmstrap confirm` arrives before the deadline, every network action of the run is reverted,
//     by this process or by the watchdog armed before the group's first change, which outlives it
//     (watchdog.ts; network-gate.ts decides under the run's lock);
//   - on an offline target (an installer's, not running) live-only steps are deferred to the
//     first-boot resume (offline.ts);
//   - a contiguous group of "reboot" actions that changed something stops the run at
//     awaiting-reboot; `resumeAfterReboot` (kvmstrap apply --resume from a first-boot unit) goes on.
// Test hook: KVMSTRAP_TEST_STEP_DELAY_MS=N sleeps N ms before each side effect and after each action,
// so the fault-injection test can kill the process between any two steps. Never set it in production.
import type { TargetFs } from "../host/target.js";
import type { Plan } from "../plan/actions.js";
import { EventBus, now } from "./events.js";
import { type ApplyOptions, type ApplyResult, BOOT_ID, execute } from "./execute.js";
import { Journal, type JournalRun, newRunId, planDigest, StateError } from "./journal.js";
import { revertUnconfirmed } from "./network-gate.js";
import { refuseStalePlan } from "./stale.js";
import { describe, isApplied, type Operation, operationOf } from "./steps.js";

export { confirmRun } from "./confirm.js";
export {
  type ApplyOptions,
  type ApplyResult,
  type ApplyStatus,
  type ConfirmOptions,
  DEFAULT_CONFIRM_SECONDS,
  STEP_DELAY_ENV,
} from "./execute.js";
export { StateError } from "./journal.js";
export type { Operation } from "./steps.js";
export { undoLastRun } from "./undo.js";
export { type Mismatch, type RebootExpectations, verifyAfterReboot } from "./verify.js";

export async function applyPlan(plan: Plan, options: ApplyOptions): Promise<ApplyResult> {
  await refuseStalePlan(plan, options.target);
  if (options.dryRun) return dryRun(plan, options);
  const journal = new Journal(options.stateDir);
  const digest = planDigest(plan);
  const latest = await settledLatest(journal, options);
  if (latest && latest.planDigest === digest && !latest.supersededBy) {
    if (latest.phase === "awaiting-reboot") {
      if (options.resume || (await rebootState(latest, options.target)) === "rebooted") {
        return resumeAfterReboot(options);
      }
      return stillAwaitingReboot(latest, options.bus ?? new EventBus());
    }
    if (latest.phase === "awaiting-confirm") return execute(latest, journal, options, true);
    if (options.resume && ["running", "failed", "reverted"].includes(latest.phase)) {
      return execute(latest, journal, options, true);
    }
  } else if (latest?.phase === "awaiting-confirm") {
    throw new StateError(
      `run ${latest.runId} awaits confirmation of its network changes until ${latest.deadline}: "kvmstrap confirm", "kvmstrap undo", or wait: they are reverted then`,
    );
  } else if (latest?.phase === "awaiting-reboot") {
    // A new run now would become the latest, and the first-boot resume would find it instead.
    throw new StateError(
      `run ${latest.runId} awaits its reboot: reboot and let "kvmstrap apply --resume" finish it, or "kvmstrap undo" it, before applying another plan`,
    );
  }
  const run = journal.create(plan);
  if (
    latest &&
    latest.planDigest === digest &&
    !latest.supersededBy &&
    (latest.phase === "running" || latest.phase === "failed" || latest.phase === "reverted")
  ) {
    await supersede(journal, latest, run);
  } else {
    await journal.save(run);
  }
  return execute(run, journal, options, false);
}

/**
 * The latest run, after putting back the network changes of one whose confirm deadline passed with
 * nobody left to revert them (the apply process and its watchdog gone, e.g. a reboot): a re-run then
 * finds the run reverted and retries it, as it would have had the watchdog done its job.
 */
async function settledLatest(journal: Journal, options: ApplyOptions): Promise<JournalRun | null> {
  const latest = await journal.latestRun();
  if (latest?.phase !== "awaiting-confirm" || !latest.deadline || Date.parse(latest.deadline) > Date.now())
    return latest;
  const bus = options.bus ?? new EventBus();
  const reason = `no confirmation by ${latest.deadline}, and nothing left running to revert it`;
  await revertUnconfirmed({ ...options, bus }, latest.runId, "apply", reason, latest.pendingGate);
  return journal.latestRun();
}

/**
 * A fresh run after an interrupted (or failed) run of the same plan takes over what that run found
 * before touching anything, so undo restores the state before the first attempt, not a half-applied one.
 */
async function supersede(journal: Journal, old: JournalRun, run: JournalRun): Promise<void> {
  run.actions.forEach((entry, j) => {
    const prior = old.actions[j];
    if (prior?.id === entry.id && prior.before && ["started", "done", "failed"].includes(prior.status)) {
      entry.before = prior.before;
      entry.status = "started";
    }
  });
  // Gates the old run passed stay passed: a confirmed network change is not asked about again.
  run.gates = [...(old.gates ?? [])];
  run.supersedes = old.runId;
  await journal.save(run);
  old.supersededBy = run.runId;
  if (old.phase === "running") await journal.setPhase(old, "failed", { error: old.error ?? "interrupted" });
  else await journal.save(old);
}

type RebootState = "rebooted" | "same-boot" | "unknown";

async function rebootState(run: JournalRun, target: TargetFs): Promise<RebootState> {
  const current = (await target.read(BOOT_ID).catch(() => null))?.trim() || null;
  if (!run.bootId || !current) return "unknown";
  return run.bootId === current ? "same-boot" : "rebooted";
}

function stillAwaitingReboot(run: JournalRun, bus: EventBus): ApplyResult {
  const ids = run.rebootIds ?? [];
  bus.emit({ type: "reboot-required", ids, time: now(), runId: run.runId });
  return {
    runId: run.runId,
    status: "awaiting-reboot",
    operations: [],
    counts: { done: 0, skipped: 0, failed: 0 },
    durationMs: 0,
    rebootIds: ids,
  };
}

/**
 * Continues the latest run, which must be awaiting a reboot. Refuses when the boot id shows no reboot
 * happened (unless `force`); `verify` may compare the running kernel with the plan first.
 */
export async function resumeAfterReboot(
  options: Omit<ApplyOptions, "dryRun" | "resume"> & { force?: boolean; verify?: () => Promise<string[]> },
): Promise<ApplyResult> {
  const journal = new Journal(options.stateDir);
  const run = await journal.latestRun();
  if (run?.phase !== "awaiting-reboot") {
    throw new StateError(
      run ? `the latest run ${run.runId} is ${run.phase}, not awaiting a reboot` : "no run to resume",
    );
  }
  if ((await rebootState(run, options.target)) === "same-boot" && !options.force) {
    throw new StateError(
      `run ${run.runId} waits for a reboot, and this machine has not rebooted since (same boot id)`,
    );
  }
  const mismatches = options.verify ? await options.verify() : [];
  if (mismatches.length > 0) {
    const bus = options.bus ?? new EventBus();
    const error = `after the reboot: ${mismatches.join("; ")}`;
    await journal.setPhase(run, "failed", { error });
    bus.emit({ type: "run", phase: "STARTED", runId: run.runId, time: now(), resumed: true });
    bus.emit({ type: "run", phase: "FAILED", runId: run.runId, time: now(), error, durationMs: 0 });
    return {
      runId: run.runId,
      status: "failed",
      operations: [],
      counts: { done: 0, skipped: 0, failed: 0 },
      durationMs: 0,
      error,
    };
  }
  run.gates = [...(run.gates ?? []), ...(run.pendingGate !== undefined ? [run.pendingGate] : [])];
  delete run.pendingGate;
  return execute(run, journal, options, true);
}

async function dryRun(plan: Plan, options: ApplyOptions): Promise<ApplyResult> {
  const bus = options.bus ?? new EventBus();
  const runId = `dry-run-${newRunId()}`;
  const t0 = Date.now();
  const operations: Operation[] = [];
  bus.emit({ type: "run", phase: "STARTED", runId, time: now(), dryRun: true, actions: plan.actions.length });
  let unchanged = 0;
  for (const a of plan.actions) {
    const applied = await isApplied(a, options, false);
    const state = applied === true ? "unchanged" : applied === false ? "change" : "unknown";
    if (applied) unchanged++;
    operations.push(operationOf(a, state));
    const check = a.kind === "run-command" && a.check ? ` (unless "${a.check.join(" ")}" succeeds)` : "";
    const detail = applied ? `already applied: ${describe(a)}` : `would ${describe(a)}${check}`;
    bus.emit({
      type: "step",
      phase: "skipped",
      id: a.id,
      summary: a.summary,
      detail,
      dryRun: true,
      runId,
      time: now(),
    });
  }
  const counts = { done: 0, skipped: unchanged, failed: 0 };
  const durationMs = Date.now() - t0;
  const actions = plan.actions.length;
  bus.emit({
    type: "run",
    phase: "SUCCEEDED",
    runId,
    time: now(),
    dryRun: true,
    actions,
    durationMs,
    counts,
  });
  return { runId, status: "dry-run", operations, counts, durationMs };
}
