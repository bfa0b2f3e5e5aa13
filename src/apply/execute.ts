// The run loop behind applyPlan and resumeAfterReboot: action by action, journaled before and after
// each side effect, with the confirm-or-revert gate after a network group and the reboot gate after a
// reboot group. Also the options and result types of the engine.
import type { Action } from "../plan/actions.js";
import { awaitConfirmation } from "./confirm.js";
import { type ApplyEvent, EventBus, now } from "./events.js";
import type { Journal, JournalRun } from "./journal.js";
import { currentOwner, revertUnconfirmed } from "./network-gate.js";
import { liveOnlyReason } from "./offline.js";
import {
  captureBefore,
  describe,
  isApplied,
  type Operation,
  operationOf,
  perform,
  type StepContext,
} from "./steps.js";
import { defaultWatchdog, type Watchdog } from "./watchdog.js";

export const STEP_DELAY_ENV = "KVMSTRAP_TEST_STEP_DELAY_MS";
export const DEFAULT_CONFIRM_SECONDS = 120;

export interface ConfirmOptions {
  timeoutSeconds: number;
  /** Another way to confirm (a TUI button, a prompt): true keeps the change, false reverts now. */
  waitForConfirm?: () => Promise<boolean>;
  /** How often the confirm file is polled (default 200 ms). */
  pollMs?: number;
}

export interface ApplyOptions extends StepContext {
  /** Where the journal lives (real path), normally <root>/var/lib/kvmstrap. */
  stateDir: string;
  dryRun?: boolean;
  bus?: EventBus;
  /** Continue the latest run of the same plan instead of starting a new one. */
  resume?: boolean;
  confirm?: ConfirmOptions;
  /** The dead-man switch armed before a network group's first change (default: defaultWatchdog;
   *  null: none, the in-process timer only, for tests of other things). */
  watchdog?: Watchdog | null;
  /** The target is not running (an installer's target): live-only steps are deferred (offline.ts). */
  offline?: boolean;
}

export type ApplyStatus = "succeeded" | "failed" | "reverted" | "awaiting-reboot" | "dry-run";

export interface ApplyResult {
  runId: string;
  status: ApplyStatus;
  /** Dry run: every operation with its state. Otherwise: the operations carried out. */
  operations: Operation[];
  counts: { done: number; skipped: number; failed: number };
  durationMs: number;
  error?: string;
  failedId?: string;
  remediation?: string;
  rebootIds?: string[];
}

export const BOOT_ID = "/proc/sys/kernel/random/boot_id";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function testDelay(): Promise<void> {
  const ms = Number(process.env[STEP_DELAY_ENV] ?? 0);
  if (ms > 0) await sleep(ms);
}
const message = (e: unknown) => (e instanceof Error ? e.message : String(e));
const isFileAction = (a: Action) => a.kind === "write-file" || a.kind === "remove-file";

/** Command ids a previous, not undone run of the same plan carried out (for commands without check). */
async function commandsDoneBefore(journal: Journal, run: JournalRun): Promise<Set<string>> {
  const out = new Set<string>();
  for (const id of await journal.runIds()) {
    if (id === run.runId) continue;
    const other = await journal.load(id);
    if (!other || other.planDigest !== run.planDigest || other.phase === "undone") continue;
    for (const a of other.actions) if (a.status === "done") out.add(a.id);
  }
  return out;
}

/** Index of the last action of the contiguous group with the same effect that holds action i. */
function groupEnd(actions: Action[], i: number): number {
  let end = i;
  while (actions[end + 1]?.effect === actions[i]?.effect) end++;
  return end;
}

/** Indices of the contiguous group of actions with the same effect that ends at `end`. */
function groupEndingAt(actions: Action[], end: number): number[] {
  const effect = actions[end]?.effect;
  const out: number[] = [];
  for (let j = end; j >= 0 && actions[j]?.effect === effect; j--) out.unshift(j);
  return out;
}

export async function execute(run: JournalRun, journal: Journal, options: ApplyOptions, resumed: boolean) {
  const bus = options.bus ?? new EventBus();
  const t0 = Date.now();
  const actions = run.plan.actions;
  const { runId } = run;
  const counts = { done: 0, skipped: 0, failed: 0 };
  const operations: Operation[] = [];
  const result = (status: ApplyStatus, extra: Partial<ApplyResult> = {}): ApplyResult => ({
    runId,
    status,
    operations,
    counts,
    durationMs: Date.now() - t0,
    ...extra,
  });
  const emit = (e: ApplyEvent) => bus.emit(e);
  const fail = async (error: string, extra: Partial<ApplyResult> = {}, status: ApplyStatus = "failed") => {
    await journal.setPhase(run, "failed", { error });
    const durationMs = Date.now() - t0;
    emit({ type: "run", phase: "FAILED", runId, time: now(), error, durationMs, counts, ...pick(extra) });
    return result(status, { error, ...extra });
  };

  emit({
    type: "run",
    phase: "STARTED",
    runId,
    time: now(),
    planDigest: run.planDigest,
    actions: actions.length,
    resumed,
  });
  for (const a of actions) if (isFileAction(a)) await options.target.cleanStale((a as { path: string }).path);
  run.gates ??= [];
  // The watchdog tells a live apply (still running the network group) from a dead one by this.
  run.owner = await currentOwner();

  /** The journal as the watchdog or `kvmstrap confirm` may have left it while this process waited. */
  const reload = async () => {
    const fresh = await journal.load(runId);
    if (!fresh) return;
    for (const k of Object.keys(run)) if (!(k in fresh)) delete (run as Record<string, unknown>)[k];
    Object.assign(run, fresh);
    run.gates ??= [];
  };
  const timeoutSeconds = options.confirm?.timeoutSeconds ?? DEFAULT_CONFIRM_SECONDS;
  const watchdog =
    options.watchdog === undefined ? defaultWatchdog(options.runner, options.target.root) : options.watchdog;

  /** Arms the watchdog for the network group ending at `end`, unless one watches it already. */
  const armWatchdog = async (end: number) => {
    if (!watchdog || options.offline || run.gates?.includes(end)) return;
    if (run.watchdog?.gate === end && (await watchdog.alive(run.watchdog))) return;
    const armedAt = new Date();
    const fallbackDeadline = new Date(armedAt.getTime() + timeoutSeconds * 1000);
    const notBefore = run.deadline ? new Date(run.deadline) : fallbackDeadline;
    const armed = await watchdog.arm({
      runId,
      stateDir: options.stateDir,
      root: options.target.root,
      notBefore,
    });
    run.watchdog = {
      gate: end,
      ...armed,
      armedAt: armedAt.toISOString(),
      fallbackDeadline: fallbackDeadline.toISOString(),
    };
    await journal.save(run);
  };

  const networkGate = async (end: number, ids: string[]): Promise<boolean> => {
    if (options.offline) {
      // Nobody is connected through an offline target's network: nothing to confirm or lose.
      run.gates?.push(end);
      await journal.save(run);
      return true;
    }
    const resuming = run.phase === "awaiting-confirm" && run.deadline;
    const deadline = resuming
      ? new Date(run.deadline as string)
      : new Date(Date.now() + timeoutSeconds * 1000);
    await journal.setPhase(run, "awaiting-confirm", {
      deadline: deadline.toISOString(),
      confirmIds: ids,
      pendingGate: end,
    });
    // A re-run that resumes the wait re-arms a watchdog that is gone (the machine rebooted...).
    if (resuming && deadline.getTime() > Date.now()) await armWatchdog(end);
    const left = Math.max(0, Math.round((deadline.getTime() - Date.now()) / 1000));
    emit({
      type: "confirm-required",
      deadline: deadline.toISOString(),
      timeoutSeconds: left,
      ids,
      time: now(),
      runId,
    });
    const outcome = await awaitConfirmation({
      stateDir: options.stateDir,
      runId,
      gate: end,
      deadline,
      waitForConfirm: options.confirm?.waitForConfirm,
      pollMs: options.confirm?.pollMs,
    });
    if (outcome !== "confirmed" && outcome !== "reverted") {
      const reason =
        outcome === "declined"
          ? "the network change was declined"
          : `no confirmation within ${timeoutSeconds} s`;
      const r = await revertUnconfirmed(gateContext, runId, "apply", reason, end);
      await reload();
      return r === "confirmed";
    }
    await reload();
    if (outcome === "confirmed") {
      if (watchdog) await watchdog.disarm(run.watchdog).catch(() => {});
      return true;
    }
    // Reverted by the watchdog while this process waited (its own event went to its log).
    const back = actions.filter((x, j) => x.effect === "network" && run.actions[j]?.status === "reverted");
    const reason = run.error ?? "reverted by the watchdog";
    emit({ type: "reverted", reason, ids: back.map((x) => x.id).reverse(), time: now(), runId });
    return false;
  };
  const gateContext = { target: options.target, runner: options.runner, stateDir: options.stateDir, bus };

  const revertNetwork = async (reason: string) => {
    await revertUnconfirmed(gateContext, runId, "apply", reason);
    await reload();
  };

  const reverted = () => {
    const error = run.error ?? "network changes reverted: not confirmed";
    const durationMs = Date.now() - t0;
    emit({ type: "run", phase: "FAILED", runId, time: now(), error, durationMs, counts });
    return result("reverted", { error });
  };
  if (run.phase === "awaiting-confirm" && run.pendingGate !== undefined) {
    if (!(await networkGate(run.pendingGate, run.confirmIds ?? []))) return reverted();
  }
  for (const entry of run.actions)
    if (entry.status === "failed" || entry.status === "reverted") entry.status = "pending";
  delete run.error;
  if (options.offline) run.offline = true;
  await journal.setPhase(run, "running");

  const doneBefore = await commandsDoneBefore(journal, run);
  let changedSoFar = run.actions.some((e) => e.status === "done");

  for (let i = 0; i < actions.length; i++) {
    const a = actions[i] as Action;
    const entry = run.actions[i];
    if (!entry || entry.id !== a.id) return fail(`journal ${runId} does not match its plan at action ${i}`);
    if (entry.status !== "done" && entry.status !== "skipped") {
      const ts = Date.now();
      emit({
        type: "step",
        phase: "started",
        id: a.id,
        summary: a.summary,
        detail: describe(a),
        runId,
        time: now(),
      });
      const live = options.offline ? liveOnlyReason(a) : null;
      if (live) {
        entry.status = "deferred";
        await journal.save(run);
        counts.skipped++;
        emit({
          type: "step",
          phase: "skipped",
          id: a.id,
          summary: a.summary,
          detail: `skipped on an offline target: ${live}; left for the first-boot resume: ${describe(a)}`,
          runId,
          time: now(),
        });
      } else {
        try {
          const wasStarted = entry.status === "started";
          let applied = await isApplied(a, options, true);
          if (applied === null) applied = !wasStarted && !changedSoFar && doneBefore.has(a.id);
          if (applied && !wasStarted) {
            await journal.markSkipped(run, a.id);
            counts.skipped++;
            emit({
              type: "step",
              phase: "skipped",
              id: a.id,
              summary: a.summary,
              detail: `already applied: ${describe(a)}`,
              runId,
              time: now(),
            });
          } else {
            if (!applied) {
              if (a.effect === "network") await armWatchdog(groupEnd(actions, i));
              await journal.markStarted(
                run,
                a.id,
                entry.before ?? (await captureBefore(a, options.target, options)),
              );
              await testDelay();
              await perform(a, options);
              operations.push(operationOf(a, "change"));
            }
            await journal.markDone(run, a.id);
            counts.done++;
            changedSoFar = true;
            const durationMs = Date.now() - ts;
            emit({
              type: "step",
              phase: "finished",
              id: a.id,
              summary: a.summary,
              detail: describe(a),
              durationMs,
              runId,
              time: now(),
            });
          }
        } catch (e) {
          const error = message(e);
          counts.failed++;
          await journal.markFailed(run, a.id, error);
          const durationMs = Date.now() - ts;
          const remediation = a.remediation;
          emit({
            type: "step",
            phase: "failed",
            id: a.id,
            summary: a.summary,
            error,
            remediation,
            durationMs,
            runId,
            time: now(),
          });
          if (a.effect === "network") await revertNetwork(`network step ${a.id} failed: ${error}`);
          return fail(`${a.id}: ${error}`, { failedId: a.id, remediation });
        }
        await testDelay();
      }
    }
    // Gates at the end of a network or reboot group that changed something.
    const next = actions[i + 1];
    if (
      (a.effect === "network" || a.effect === "reboot") &&
      next?.effect !== a.effect &&
      !run.gates.includes(i)
    ) {
      const changed = groupEndingAt(actions, i).filter((j) => run.actions[j]?.status === "done");
      const ids = changed.map((j) => actions[j]?.id ?? "");
      if (changed.length > 0 && a.effect === "network" && !(await networkGate(i, ids))) return reverted();
      if (changed.length > 0 && a.effect === "reboot") {
        const bootId = (await options.target.read(BOOT_ID).catch(() => null))?.trim() || null;
        await journal.setPhase(run, "awaiting-reboot", { bootId, rebootIds: ids, pendingGate: i });
        emit({ type: "reboot-required", ids, time: now(), runId });
        return result("awaiting-reboot", { rebootIds: ids });
      }
    }
  }
  const deferred = run.actions.filter((e) => e.status === "deferred").map((e) => e.id);
  if (deferred.length > 0) {
    // The live-only steps run on the target's first boot (kvmstrap apply --resume).
    const bootId = (await options.target.read(BOOT_ID).catch(() => null))?.trim() || null;
    await journal.setPhase(run, "awaiting-reboot", { bootId, rebootIds: deferred });
    emit({ type: "reboot-required", ids: deferred, time: now(), runId });
    return result("awaiting-reboot", { rebootIds: deferred });
  }
  await journal.setPhase(run, "done");
  emit({ type: "run", phase: "SUCCEEDED", runId, time: now(), durationMs: Date.now() - t0, counts });
  return result("succeeded");
}

function pick(extra: Partial<ApplyResult>): { remediation?: string } {
  return extra.remediation ? { remediation: extra.remediation } : {};
}
