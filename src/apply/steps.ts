// One action at a time: how it reads as an operation, whether it is already applied, what it finds
// before touching anything, how it is carried out, and how it is put back. Every effect goes through
// the TargetFs and CommandRunner ports.
import path from "node:path";
import type { CommandRunner } from "../host/commands.js";
import { ORIG_SUFFIX, type TargetFs } from "../host/target.js";
import { type Action, argvForPeople, isVmAction } from "../plan/actions.js";
import type { Libvirt } from "../vm/libvirt.js";
import type { Before } from "./journal.js";
import { captureVmBefore, describeVm, isVmApplied, performVm, revertVm, vmInverse } from "./vm-steps.js";

export interface StepContext {
  target: TargetFs;
  runner: CommandRunner;
  /** The libvirt connection a plan's VM actions go through (needed only when it has some). */
  libvirt?: Libvirt | undefined;
}

/** Whether the operation would change anything: "unknown" for commands whose check is not run. */
export type OpState = "change" | "unchanged" | "unknown";

export type Operation = { id: string; state: OpState; undo?: boolean } & (
  | { kind: "write-file"; path: string; content: string; mode: number }
  | { kind: "remove-file"; path: string }
  | { kind: "write-sysfs"; path: string; value: string }
  | { kind: "run-command"; argv: string[] }
  | { kind: "vm-overlay"; path: string; image: string }
  | { kind: "vm-seed"; path: string }
  | {
      kind: "libvirt";
      op:
        | "define-domain"
        | "start-domain"
        | "undefine-domain"
        | "destroy-domain"
        | "define-network"
        | "start-network"
        | "undefine-network"
        | "destroy-network";
      name: string;
    }
);

const COMMAND_TIMEOUT_MS = 15 * 60_000;

const quote = (arg: string) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`);
export const shellLine = (argv: readonly string[]) => argv.map(quote).join(" ");

export function operationOf(a: Action, state: OpState): Operation {
  switch (a.kind) {
    case "write-file":
      return { kind: a.kind, id: a.id, state, path: a.path, content: a.content, mode: a.mode };
    case "remove-file":
      return { kind: a.kind, id: a.id, state, path: a.path };
    case "write-sysfs":
      return { kind: a.kind, id: a.id, state, path: a.path, value: a.value };
    case "run-command":
      return { kind: a.kind, id: a.id, state, argv: argvForPeople(a) };
    case "vm-overlay":
      return { kind: a.kind, id: a.id, state, path: a.path, image: a.image };
    case "vm-seed":
      return { kind: a.kind, id: a.id, state, path: a.path };
    case "libvirt":
      return { kind: a.kind, id: a.id, state, op: a.op, name: a.name };
  }
}

export function describe(a: Action): string {
  switch (a.kind) {
    case "write-file":
      return `write ${a.path} (${Buffer.byteLength(a.content)} bytes, mode ${a.mode.toString(8).padStart(4, "0")})`;
    case "remove-file":
      return `remove ${a.path}`;
    case "write-sysfs":
      return `write "${a.value}" to ${a.path}`;
    case "run-command":
      return `run ${shellLine(argvForPeople(a))}`;
    default:
      return describeVm(a);
  }
}

/** A sysfs choice attribute reads "always [madvise] never": the bracketed word is the value. */
export function sysfsValue(text: string): string {
  const t = text.trim();
  return /\[([^\]]*)\]/.exec(t)?.[1] ?? t;
}

async function runChecked(ctx: StepContext, argv: readonly string[], shown = argv): Promise<void> {
  const [file, ...args] = argv;
  if (!file) throw new Error("empty command");
  const r = await ctx.runner.run(file, args, {
    timeoutMs: COMMAND_TIMEOUT_MS,
    env: { KVMSTRAP_ROOT: ctx.target.root },
  });
  if (r.exitCode === 0) return;
  const why = r.timedOut
    ? "timed out"
    : r.exitCode === undefined
      ? "could not start"
      : `exited with ${r.exitCode}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-3).join(" | ");
  throw new Error(`${shellLine(shown)} ${why}${tail ? `: ${tail}` : ""}`);
}

/**
 * true: nothing to do. null: cannot tell without running the command (no check, or checks not run).
 */
export async function isApplied(a: Action, ctx: StepContext, runChecks: boolean): Promise<boolean | null> {
  switch (a.kind) {
    case "write-file":
      return (await ctx.target.read(a.path)) === a.content;
    case "remove-file":
      return !(await ctx.target.exists(a.path));
    case "write-sysfs": {
      const now = await ctx.target.read(a.path);
      return now !== null && sysfsValue(now) === a.value.trim();
    }
    case "run-command": {
      if (!a.check || !runChecks) return null;
      const [file, ...args] = a.check;
      if (!file) return null;
      const r = await ctx.runner.run(file, args, {
        timeoutMs: COMMAND_TIMEOUT_MS,
        env: { KVMSTRAP_ROOT: ctx.target.root },
      });
      return r.exitCode === 0;
    }
    default:
      return isVmApplied(a, ctx);
  }
}

/** Directories a write to hostPath must create, outermost first. */
async function missingDirs(target: TargetFs, hostPath: string): Promise<string[]> {
  const out: string[] = [];
  for (let dir = path.posix.dirname(path.posix.resolve("/", hostPath)); dir !== "/"; ) {
    if (await target.exists(dir)) break;
    out.unshift(dir);
    dir = path.posix.dirname(dir);
  }
  return out;
}

export async function captureBefore(a: Action, target: TargetFs, ctx?: StepContext): Promise<Before> {
  if (isVmAction(a)) {
    if (!ctx) throw new Error(`${a.id}: capturing a VM action's prior state needs the libvirt port`);
    return captureVmBefore(a, ctx, () => missingDirs(target, a.kind === "libvirt" ? "/" : a.path));
  }
  switch (a.kind) {
    case "write-file":
    case "remove-file":
      return {
        content: await target.read(a.path),
        mode: await target.mode(a.path),
        origExisted: await target.exists(`${a.path}${ORIG_SUFFIX}`),
        createdDirs: await missingDirs(target, a.path),
      };
    case "write-sysfs": {
      const now = await target.read(a.path);
      return { content: now === null ? null : sysfsValue(now) };
    }
    case "run-command":
      return { content: null };
  }
}

export async function perform(a: Action, ctx: StepContext): Promise<void> {
  switch (a.kind) {
    case "write-file":
      return ctx.target.writeAtomic(a.path, a.content, a.mode);
    case "remove-file":
      return ctx.target.remove(a.path);
    case "write-sysfs":
      return ctx.target.writeSysfs(a.path, a.value);
    case "run-command":
      return runChecked(ctx, a.argv, argvForPeople(a));
    default:
      return performVm(a, ctx);
  }
}

/** The operation that puts the action back (for dry-run undo), or null when there is nothing to do. */
export function inverseOf(a: Action, before: Before | undefined): Operation | null {
  switch (a.kind) {
    case "write-file":
    case "remove-file": {
      const prev = before ? before.content : a.previous;
      if (prev === null) return { kind: "remove-file", id: a.id, state: "change", undo: true, path: a.path };
      const mode = before?.mode ?? (a.kind === "write-file" ? a.mode : 0o644);
      return { kind: "write-file", id: a.id, state: "change", undo: true, path: a.path, content: prev, mode };
    }
    case "write-sysfs": {
      const prev = before?.content ?? a.previous;
      return prev === null
        ? null
        : { kind: "write-sysfs", id: a.id, state: "change", undo: true, path: a.path, value: prev };
    }
    case "run-command":
      return a.undo ? { kind: "run-command", id: a.id, state: "change", undo: true, argv: a.undo } : null;
    default:
      return { id: a.id, state: "change", undo: true, ...vmInverse(a) };
  }
}

/** Puts an action back to what it found (the journal's `before`; the plan's `previous` otherwise). */
export async function revert(a: Action, before: Before | undefined, ctx: StepContext): Promise<void> {
  const { target } = ctx;
  switch (a.kind) {
    case "write-file":
    case "remove-file": {
      const inv = inverseOf(a, before);
      if (inv?.kind === "write-file")
        await target.writeAtomic(a.path, inv.content, inv.mode, { keepOriginal: false });
      else await target.remove(a.path, { keepOriginal: false });
      if (before?.origExisted === false)
        await target.remove(`${a.path}${ORIG_SUFFIX}`, { keepOriginal: false });
      for (const dir of [...(before?.createdDirs ?? [])].reverse()) await target.removeEmptyDir(dir);
      return;
    }
    case "write-sysfs": {
      const prev = before?.content ?? a.previous;
      if (prev === null) throw new Error(`${a.path}: the previous value is unknown, cannot restore it`);
      return target.writeSysfs(a.path, prev);
    }
    case "run-command":
      if (a.undo) await runChecked(ctx, a.undo);
      return;
    default:
      return revertVm(a, before, ctx);
  }
}
