// The apply journal: one JSON file per run under <stateDir>/runs/<runId>.json, rewritten atomically
// before and after every action. It holds the whole plan (so a first-boot unit can resume without the
// plan file), each action's status, and what was really found before the action touched anything,
// which is what undo restores. A run killed at any instant leaves a journal that says, for every
// action, either "not touched" (pending), "maybe touched, and here is the prior state" (started), or
// "done".
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { cleanStaleTemps, writeFileAtomic } from "../host/target.js";
import type { Plan } from "../plan/actions.js";
import { canonicalJson } from "../plan/canonical-json.js";

export type RunStatePhase = "running" | "awaiting-confirm" | "awaiting-reboot" | "done" | "failed" | "undone";
/** "started" is journaled before the side effect (with `before`); "reverted" after undo/revert. */
export type ActionStatus = "pending" | "started" | "done" | "skipped" | "failed" | "reverted";

/** The state an action found, enough to put it back. */
export interface Before {
  /** File content or sysfs value; null: the file did not exist. */
  content: string | null;
  mode?: number | null;
  /** Whether <path>.kvmstrap-orig existed already (else undo removes the one this run made). */
  origExisted?: boolean;
  /** Directories the write had to create, outermost first (undo removes them when empty). */
  createdDirs?: string[];
}

export interface JournalAction {
  id: string;
  status: ActionStatus;
  before?: Before;
  startedAt?: string;
  finishedAt?: string;
  error?: string;
}

export interface JournalRun {
  schema: "kvmstrap.journal/1";
  runId: string;
  planDigest: string;
  plan: Plan;
  phase: RunStatePhase;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** awaiting-confirm: when the network actions are reverted unless confirmed. */
  deadline?: string;
  confirmIds?: string[];
  /** awaiting-reboot: /proc/sys/kernel/random/boot_id when the run stopped (null: unknown). */
  bootId?: string | null;
  rebootIds?: string[];
  error?: string;
  /** The run this one took over from (an interrupted run of the same plan), and the reverse. */
  supersedes?: string;
  supersededBy?: string;
  /** Indices of the actions ending a network or reboot group whose gate (confirm, reboot) is passed. */
  gates?: number[];
  /** awaiting-reboot: the gate the reboot passes. */
  pendingGate?: number;
  actions: JournalAction[];
}

/** The journal's state forbids what was asked (nothing to undo, a run awaits confirmation...). */
export class StateError extends Error {
  override name = "StateError";
}

/** sha256 of the plan's canonical JSON: a resumed apply knows it runs the same plan. */
export function planDigest(plan: Plan): string {
  return createHash("sha256").update(canonicalJson(plan)).digest("hex");
}

/** Sortable and file-name safe: 20250102T030405.678Z-1a2b3c. */
export function newRunId(date = new Date()): string {
  return `${date.toISOString().replace(/[-:]/g, "")}-${randomBytes(3).toString("hex")}`;
}

export class Journal {
  readonly dir: string;
  /** Saves are serialised: two concurrent writes of one run file would share a temp file. */
  private chain: Promise<void> = Promise.resolve();
  private readonly swept = new Set<string>();

  constructor(readonly stateDir: string) {
    this.dir = path.join(stateDir, "runs");
  }

  file(runId: string): string {
    return path.join(this.dir, `${runId}.json`);
  }

  create(plan: Plan, runId = newRunId()): JournalRun {
    const time = new Date().toISOString();
    return {
      schema: "kvmstrap.journal/1",
      runId,
      planDigest: planDigest(plan),
      plan,
      phase: "running",
      createdAt: time,
      updatedAt: time,
      actions: plan.actions.map((a) => ({ id: a.id, status: "pending" })),
    };
  }

  save(run: JournalRun): Promise<void> {
    run.updatedAt = new Date().toISOString();
    const text = `${JSON.stringify(run, null, 1)}\n`;
    const file = this.file(run.runId);
    const first = !this.swept.has(file);
    this.swept.add(file);
    // A writer killed mid-save leaves its temporary file: sweep once per run file and process.
    const p = this.chain.then(async () => {
      if (first) await cleanStaleTemps(file);
      await writeFileAtomic(file, text, 0o600);
    });
    this.chain = p.catch(() => {});
    return p;
  }

  async load(runId: string): Promise<JournalRun | null> {
    try {
      const run = JSON.parse(await readFile(this.file(runId), "utf8")) as JournalRun;
      return run.schema === "kvmstrap.journal/1" ? run : null;
    } catch {
      return null;
    }
  }

  async runIds(): Promise<string[]> {
    try {
      return (await readdir(this.dir))
        .filter((n) => n.endsWith(".json") && !n.includes(".kvmstrap-tmp-"))
        .map((n) => n.slice(0, -5))
        .sort();
    } catch {
      return [];
    }
  }

  /** The most recent run (by creation time), or null. */
  async latestRun(): Promise<JournalRun | null> {
    const runs = await Promise.all((await this.runIds()).map((id) => this.load(id)));
    const sorted = runs
      .filter((r): r is JournalRun => r !== null)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.runId.localeCompare(b.runId));
    return sorted.at(-1) ?? null;
  }

  private entry(run: JournalRun, id: string): JournalAction {
    const a = run.actions.find((x) => x.id === id);
    if (!a) throw new Error(`journal ${run.runId}: no action ${id}`);
    return a;
  }

  /** Journaled before the side effect: from here on the action may have touched the target. */
  markStarted(run: JournalRun, id: string, before: Before | undefined): Promise<void> {
    const a = this.entry(run, id);
    a.status = "started";
    if (before && !a.before) a.before = before;
    a.startedAt = new Date().toISOString();
    delete a.error;
    return this.save(run);
  }

  private finish(run: JournalRun, id: string, status: ActionStatus, error?: string): Promise<void> {
    const a = this.entry(run, id);
    a.status = status;
    a.finishedAt = new Date().toISOString();
    if (error) a.error = error;
    return this.save(run);
  }

  markDone(run: JournalRun, id: string) {
    return this.finish(run, id, "done");
  }

  markSkipped(run: JournalRun, id: string) {
    return this.finish(run, id, "skipped");
  }

  markFailed(run: JournalRun, id: string, error: string) {
    return this.finish(run, id, "failed", error);
  }

  markReverted(run: JournalRun, id: string) {
    return this.finish(run, id, "reverted");
  }

  setPhase(run: JournalRun, phase: RunStatePhase, extra: Partial<JournalRun> = {}): Promise<void> {
    Object.assign(run, extra);
    run.phase = phase;
    if (phase === "done" || phase === "failed" || phase === "undone")
      run.finishedAt = new Date().toISOString();
    if (phase !== "awaiting-confirm") {
      delete run.deadline;
      delete run.confirmIds;
    }
    return this.save(run);
  }
}
