// What the TUI was started on, and the engine calls it makes: plan, apply. No logic of its own: the
// same functions `kvmstrap plan` and `kvmstrap apply` use, fed the answer the screens built.
import path from "node:path";
import type { Answer } from "../answer/schema.js";
import { validateAnswer } from "../answer/validate.js";
import { applyPlan } from "../apply/engine.js";
import { EventBus, fileLogSink } from "../apply/events.js";
import type { ApplyResult } from "../apply/execute.js";
import type { HostReport } from "../detect/types.js";
import { ChrootRunner, type CommandRunner, ExecaRunner } from "../host/commands.js";
import type { HostFs } from "../host/fs.js";
import { RootedTargetFs } from "../host/target.js";
import type { Plan } from "../plan/actions.js";
import { buildPlan, planFiles } from "../plan/index.js";

export interface Session {
  root: string;
  fs: HostFs;
  /** Exploring a captured machine: apply is always a dry run. */
  demo: boolean;
  isRoot: boolean;
  /** The --answer file the screens were pre-filled from. */
  answerFile: string | null;
  savePath: string;
  stateDir: string;
  runner?: CommandRunner;
}

export function makeSession(o: {
  root: string;
  fs: HostFs;
  demo?: boolean;
  answerFile?: string | null;
  isRoot?: boolean;
}): Session {
  return {
    root: o.root,
    fs: o.fs,
    demo: o.demo ?? false,
    isRoot: o.isRoot ?? process.getuid?.() === 0,
    answerFile: o.answerFile ?? null,
    savePath: "./kvmstrap-answer.yaml",
    stateDir: path.join(path.resolve(o.root), "var/lib/kvmstrap"),
  };
}

/** Why only a dry run is possible here, or null when a real apply may be confirmed. */
export function dryRunOnly(s: Session): string | null {
  if (s.demo) return "a captured machine (demo mode)";
  if (!s.isRoot) return "not running as root";
  return null;
}

export interface Review {
  answer: Answer;
  plan: Plan;
  errors: string[];
  warnings: string[];
}

/** The plan exactly as `kvmstrap plan` builds it: current files read through the host port. */
export async function review(s: Session, report: HostReport, answer: Answer): Promise<Review> {
  const v = validateAnswer(answer, report, { unattended: false });
  const paths = planFiles(report, answer);
  const texts = await Promise.all(paths.map((p) => s.fs.readText(p)));
  const current = new Map(paths.map((p, i) => [p, texts[i] ?? null]));
  const plan = buildPlan(report, answer, current);
  return {
    answer,
    plan,
    errors: v.errors.map((i) => `${i.path}: ${i.message}`),
    warnings: v.warnings.map((i) => `${i.path}: ${i.message}`),
  };
}

export interface ApplyRun {
  bus: EventBus;
  done: Promise<ApplyResult>;
}

export function startApply(
  s: Session,
  plan: Plan,
  o: { dryRun: boolean; waitForConfirm: () => Promise<boolean>; timeoutSeconds: number },
  bus = new EventBus(),
): ApplyRun {
  const root = path.resolve(s.root);
  if (!o.dryRun) bus.subscribe(fileLogSink(path.join(s.stateDir, "log")));
  const runner = s.runner ?? (root === "/" ? new ExecaRunner() : new ChrootRunner(root));
  const done = Promise.resolve().then(() =>
    applyPlan(plan, {
      target: new RootedTargetFs(root),
      runner,
      stateDir: s.stateDir,
      bus,
      dryRun: o.dryRun,
      confirm: { timeoutSeconds: o.timeoutSeconds, waitForConfirm: o.waitForConfirm },
    }),
  );
  return { bus, done };
}
