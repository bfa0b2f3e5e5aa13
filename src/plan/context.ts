// The planner's working state: the facts, the desired answer, what the target's managed files hold
// now, and the actions collected so far. Helpers here keep every section planner honest: a file is
// planned only when its content changes, and each action records the prior state it would undo to.
import { type Finding, refused } from "../answer/rules/index.js";
import type { Answer } from "../answer/schema.js";
import type { HostReport } from "../detect/types.js";
import type { Action, Effect, Refusal } from "./actions.js";

export interface PlanContext {
  report: HostReport;
  answer: Answer;
  /** Current content of every file the plan may touch (null: absent). */
  current: ReadonlyMap<string, string | null>;
  actions: Action[];
  refusals: Refusal[];
  /** The rule set's findings for this answer on this host: planners skip what an error refused. */
  findings: readonly Finding[];
}

export function currentOf(ctx: PlanContext, path: string): string | null {
  return ctx.current.get(path) ?? null;
}

export function planFile(
  ctx: PlanContext,
  a: { id: string; path: string; content: string; mode?: number; effect: Effect; summary: string },
): boolean {
  const previous = currentOf(ctx, a.path);
  if (previous === a.content) return false;
  ctx.actions.push({
    kind: "write-file",
    id: a.id,
    path: a.path,
    content: a.content,
    mode: a.mode ?? 0o644,
    previous,
    effect: a.effect,
    summary: a.summary,
  });
  return true;
}

export function planCommand(
  ctx: PlanContext,
  a: {
    id: string;
    argv: string[];
    undo?: string[] | null;
    check?: string[] | null;
    effect: Effect;
    summary: string;
    secretArgs?: number[];
  },
): void {
  ctx.actions.push({
    kind: "run-command",
    id: a.id,
    argv: a.argv,
    undo: a.undo ?? null,
    check: a.check ?? null,
    effect: a.effect,
    summary: a.summary,
    ...(a.secretArgs ? { secretArgs: a.secretArgs } : {}),
  });
}

export function planSysfs(
  ctx: PlanContext,
  a: { id: string; path: string; value: string; previous: string | null; effect: Effect; summary: string },
): void {
  if (a.previous !== null && a.previous.trim() === a.value.trim()) return;
  ctx.actions.push({ kind: "write-sysfs", ...a });
}

export function refuse(ctx: PlanContext, path: string, reason: string): void {
  ctx.refusals.push({ path, reason });
}

/** A finding of the rule set refused this item (or its section): plan nothing for it. */
export function isRefused(ctx: PlanContext, path: string, ...sections: string[]): boolean {
  return refused(ctx.findings, path, ...sections);
}

/** A boot-time script, the oneshot unit that runs it, and `systemctl enable` of that unit. */
export function planBootUnit(
  ctx: PlanContext,
  a: {
    id: string;
    effect: Effect;
    script: { path: string; content: string; summary: string };
    unit: { path: string; content: string; summary: string };
  },
): void {
  planFile(ctx, { id: `${a.id}.script`, ...a.script, mode: 0o755, effect: a.effect });
  planFile(ctx, { id: `${a.id}.unit`, ...a.unit, effect: a.effect });
  const name = a.unit.path.slice(a.unit.path.lastIndexOf("/") + 1);
  planCommand(ctx, {
    id: `${a.id}.enable-unit`,
    argv: ["systemctl", "enable", name],
    undo: ["systemctl", "disable", name],
    check: ["systemctl", "is-enabled", "--quiet", name],
    effect: a.effect,
    summary: `enable ${name}`,
  });
}
