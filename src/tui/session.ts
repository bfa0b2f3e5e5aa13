// What the TUI was started on, and the use cases it calls: prepare (validate + plan) and apply. The
// screens hold no logic of their own: these are the app layer's functions that `kvmstrap plan` and
// `kvmstrap apply` call, fed the answer the screens built.
import path from "node:path";
import type { Answer } from "../answer/schema.js";
import { stateDirOf } from "../app/adapters.js";
import { runApply } from "../app/apply.js";
import { baseDirOf, blockers, prepareAnswer } from "../app/prepare.js";
import { EventBus } from "../apply/events.js";
import type { ApplyResult } from "../apply/execute.js";
import type { HostReport } from "../detect/types.js";
import type { CommandRunner } from "../host/commands.js";
import type { HostFs } from "../host/fs.js";
import type { Plan } from "../plan/actions.js";

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
  /** Replaces the command runner the app picks for this root (tests). */
  runner?: CommandRunner;
}

export function makeSession(o: {
  machine?: { root: string; fs: HostFs; captured: boolean };
  root?: string;
  fs?: HostFs;
  demo?: boolean;
  answerFile?: string | null;
  isRoot?: boolean;
}): Session {
  const root = o.machine?.root ?? o.root ?? "/";
  const fs = o.machine?.fs ?? o.fs;
  if (!fs) throw new Error("makeSession needs a machine or a root and its fs");
  return {
    root,
    fs,
    demo: o.demo ?? o.machine?.captured ?? false,
    isRoot: o.isRoot ?? process.getuid?.() === 0,
    answerFile: o.answerFile ?? null,
    savePath: "./kvmstrap-answer.yaml",
    stateDir: stateDirOf(root),
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
  /** Everything that blocks a real apply: validation errors and plan refusals, one line each. */
  errors: string[];
  warnings: string[];
}

/** The plan exactly as `kvmstrap plan` builds it, with relative paths resolved against the answer file. */
export async function review(s: Session, report: HostReport, answer: Answer): Promise<Review> {
  const p = await prepareAnswer(s.fs, report, answer, {
    baseDir: baseDirOf(s.answerFile),
  });
  return {
    answer,
    plan: p.plan,
    errors: blockers(p),
    warnings: p.validation.warnings.map((i) => `${i.path}: ${i.message}`),
  };
}

export interface ApplyRun {
  bus: EventBus;
  done: Promise<ApplyResult>;
}

export function startApply(
  s: Session,
  r: Review,
  o: { dryRun: boolean; waitForConfirm: () => Promise<boolean> },
  bus = new EventBus(),
): ApplyRun {
  const done = Promise.resolve().then(() =>
    runApply(r.plan, {
      root: path.resolve(s.root),
      stateDir: s.stateDir,
      bus,
      dryRun: o.dryRun,
      answer: r.answer,
      waitForConfirm: o.waitForConfirm,
      adapters: s.runner ? { runner: s.runner } : undefined,
    }),
  );
  return { bus, done };
}
