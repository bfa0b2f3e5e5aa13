// Apply, resume, undo and confirm, with the options the answer gives (the confirm timeout, the
// webhook) and the on-disk event log. The CLI and the TUI add only their own views of the events.
import path from "node:path";
import type { Answer } from "../answer/schema.js";
import {
  type ApplyResult,
  applyPlan,
  confirmRun,
  DEFAULT_CONFIRM_SECONDS,
  resumeAfterReboot,
  StateError,
  undoLastRun,
  verifyAfterReboot,
} from "../apply/engine.js";
import {
  type EventBus,
  type EventSink,
  fileLogSink,
  type WebhookOptions,
  webhookSink,
} from "../apply/events.js";
import type { UndoResult } from "../apply/undo.js";
import { InputError } from "../core/errors.js";
import { RootedHostFs } from "../host/fs.js";
import type { Plan } from "../plan/actions.js";
import { type Adapters, adaptersFor, stateDirOf } from "./adapters.js";
import { detectMachine } from "./inspect.js";

export { DEFAULT_CONFIRM_SECONDS } from "../apply/engine.js";

export interface RunOptions {
  /** The machine root the plan applies to ("/" for this host). */
  root: string;
  stateDir?: string | undefined;
  bus: EventBus;
  dryRun?: boolean;
  /** Replaces the adapters chosen for `root` (tests; an installer with its own runner). */
  adapters?: Partial<Adapters> | undefined;
}

export interface ApplyRunOptions extends RunOptions {
  /** The answer the plan came from: its confirm timeout and webhook. Null for a plan file. */
  answer: Answer | null;
  /** An explicit confirm timeout (the CLI flag) overrides the answer's. */
  confirmTimeoutSeconds?: number | undefined;
  /** A prompt that may confirm the network change (the TUI, a terminal); the confirm file always can. */
  waitForConfirm?: (() => Promise<boolean>) | undefined;
  resume?: boolean;
  /** The target is not running (an installer's target): live-only steps wait for its first boot. */
  offline?: boolean;
}

/** The confirm timeout in force: the flag, else the answer's network.confirmTimeoutSeconds, else the default. */
export function confirmTimeoutOf(answer: Answer | null, flag?: number): number {
  return flag ?? answer?.network?.confirmTimeoutSeconds ?? DEFAULT_CONFIRM_SECONDS;
}

/** The answer's webhook, secret headers kept apart so they are redacted everywhere else; null: none. */
export function answerWebhook(
  report: Answer["report"] | undefined,
  options: WebhookOptions = {},
): EventSink | null {
  if (!report?.webhook) return null;
  const secret = new Set(report.secretHeaders.map((h) => h.toLowerCase()));
  const pick = (isSecret: boolean) =>
    Object.fromEntries(
      Object.entries(report.headers).filter(([k]) => secret.has(k.toLowerCase()) === isSecret),
    );
  return webhookSink(report.webhook, pick(false), pick(true), options);
}

function subscribeWebhook(bus: EventBus, report: Answer["report"] | undefined): void {
  const sink = answerWebhook(report);
  if (sink) bus.subscribe(sink);
}

const stateErrorsAsInput = async <T>(run: () => Promise<T>): Promise<T> => {
  try {
    return await run();
  } catch (e) {
    if (e instanceof StateError) throw new InputError(e.message);
    throw e;
  }
};

/** After the reboot: the running kernel's command line and the vfio-pci bindings against the plan. */
async function verifyTarget(root: string, plan: Plan): Promise<string[]> {
  if (!plan.expect) return [];
  const real = path.resolve(root);
  const report = await detectMachine(
    { root: real, fs: new RootedHostFs(real), captured: real !== "/" },
    { mode: "never" },
  );
  return verifyAfterReboot(plan.expect, report).map(
    (m) => `${m.item}: expected ${m.expected}, found ${m.actual}`,
  );
}

/**
 * Carry out a plan (or resume the last run). The state dir, adapters, log sink, webhook and confirm
 * timeout are chosen here for every front end.
 */
export async function runApply(plan: Plan, o: ApplyRunOptions): Promise<ApplyResult> {
  const { target, runner, libvirt } = { ...adaptersFor(o.root), ...o.adapters };
  const stateDir = stateDirOf(o.root, o.stateDir);
  if (!o.dryRun) {
    o.bus.subscribe(fileLogSink(path.join(stateDir, "log")));
    subscribeWebhook(o.bus, o.answer?.report);
  }
  const options = {
    target,
    runner,
    libvirt,
    stateDir,
    bus: o.bus,
    dryRun: Boolean(o.dryRun),
    resume: Boolean(o.resume),
    offline: Boolean(o.offline),
    confirm: {
      timeoutSeconds: confirmTimeoutOf(o.answer, o.confirmTimeoutSeconds),
      waitForConfirm: o.waitForConfirm,
    },
  };
  return stateErrorsAsInput(async () => {
    if (o.resume) {
      const { Journal } = await import("../apply/journal.js");
      const latest = await new Journal(stateDir).latestRun();
      if (latest?.phase === "awaiting-reboot")
        return resumeAfterReboot({ ...options, verify: () => verifyTarget(o.root, plan) });
    }
    return applyPlan(plan, options);
  });
}

/** The plan of the last unfinished run, for `apply --resume` without a plan. */
export async function planToResume(root: string, stateDir?: string): Promise<Plan> {
  const { Journal } = await import("../apply/journal.js");
  const latest = await new Journal(stateDirOf(root, stateDir)).latestRun();
  if (!latest || latest.phase === "done" || latest.phase === "undone") {
    throw new InputError(
      latest ? `nothing to resume: the last run ${latest.runId} is ${latest.phase}` : "nothing to resume",
    );
  }
  return latest.plan;
}

export async function runUndo(o: RunOptions): Promise<UndoResult> {
  const { target, runner, libvirt } = { ...adaptersFor(o.root), ...o.adapters };
  const stateDir = stateDirOf(o.root, o.stateDir);
  if (!o.dryRun) o.bus.subscribe(fileLogSink(path.join(stateDir, "log")));
  return stateErrorsAsInput(() =>
    undoLastRun({ target, runner, libvirt, stateDir, bus: o.bus, dryRun: Boolean(o.dryRun) }),
  );
}

/** Keep the network changes of a run waiting for confirmation; returns the run id confirmed. */
export function confirmNetwork(root: string, stateDir?: string, runId?: string): Promise<string> {
  return stateErrorsAsInput(() => confirmRun(stateDirOf(root, stateDir), runId));
}
