// The apply journal: one JSON file per run under <stateDir>/runs/<runId>.json, rewritten atomically
// before and after every action. It holds the whole plan (so a first-boot unit can resume without the
// plan file), each action's status, and what was really found before the action touched anything,
// which is what undo restores. A run killed at any instant leaves a journal that says, for every
// action, either "not touched" (pending), "maybe touched, and here is the prior state" (started), or
// "done".
import { createHash, randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { cleanStaleTemps, writeFileAtomic } from "../core/atomic-write.js";
import { canonicalJson } from "../core/canonical-json.js";
import { InputError } from "../core/errors.js";
import { type Plan, planSchema } from "../plan/actions.js";
import { firstIssue } from "./wire.js";

export const runStatePhaseSchema = z.enum([
  "running",
  "awaiting-confirm",
  "awaiting-reboot",
  "done",
  "failed",
  // The network changes were not confirmed in time and were put back; a re-run retries.
  "reverted",
  "undone",
]);
export type RunStatePhase = z.infer<typeof runStatePhaseSchema>;
/** "started" is journaled before the side effect (with `before`); "reverted" after undo/revert;
 *  "deferred": a live-only step not run on an offline target, left for the first-boot resume. */
export const actionStatusSchema = z.enum([
  "pending",
  "started",
  "done",
  "skipped",
  "failed",
  "reverted",
  "deferred",
]);
export type ActionStatus = z.infer<typeof actionStatusSchema>;

/** The state an action found, enough to put it back. */
export const beforeSchema = z.object({
  /** File content or sysfs value; null: the file (or the VM's file, or the domain) did not exist. */
  content: z.string().nullable(),
  mode: z.number().int().nullable().optional(),
  /** Whether <path>.kvmstrap-orig existed already (else undo removes the one this run made). */
  origExisted: z.boolean().optional(),
  /** Directories the write had to create, outermost first (undo removes them when empty). */
  createdDirs: z.array(z.string()).optional(),
});
export type Before = z.infer<typeof beforeSchema>;

export const journalActionSchema = z.object({
  id: z.string(),
  status: actionStatusSchema,
  before: beforeSchema.optional(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  error: z.string().optional(),
});
export type JournalAction = z.infer<typeof journalActionSchema>;

export const JOURNAL_SCHEMA_ID = "kvmstrap.journal/1";

export const journalRunSchema = z.object({
  schema: z.literal(JOURNAL_SCHEMA_ID),
  runId: z.string().min(1),
  planDigest: z.string(),
  plan: planSchema,
  phase: runStatePhaseSchema,
  createdAt: z.string(),
  updatedAt: z.string(),
  finishedAt: z.string().optional(),
  /** awaiting-confirm: when the network actions are reverted unless confirmed. */
  deadline: z.string().optional(),
  confirmIds: z.array(z.string()).optional(),
  /** awaiting-reboot: /proc/sys/kernel/random/boot_id when the run stopped (null: unknown). */
  bootId: z.string().nullable().optional(),
  rebootIds: z.array(z.string()).optional(),
  error: z.string().optional(),
  /** The run this one took over from (an interrupted run of the same plan), and the reverse. */
  supersedes: z.string().optional(),
  supersededBy: z.string().optional(),
  /** Indices of the actions ending a network or reboot group whose gate (confirm, reboot) is passed. */
  gates: z.array(z.number().int()).optional(),
  /** awaiting-reboot: the gate the reboot passes. */
  pendingGate: z.number().int().optional(),
  /** The apply process carrying the run out: its pid and start time (clock ticks after boot). */
  owner: z.object({ pid: z.number().int(), startTime: z.string().nullable() }).optional(),
  /** The dead-man switch armed for a network group (see watchdog.ts). */
  watchdog: z
    .object({
      /** The gate (index of the group's last action) it watches. */
      gate: z.number().int(),
      kind: z.enum(["process", "systemd-timer"]),
      pid: z.number().int().optional(),
      unit: z.string().optional(),
      armedAt: z.string(),
      /** Before the confirm window opens: revert after this time if the apply process is gone. */
      fallbackDeadline: z.string(),
    })
    .optional(),
  /** Who put the unconfirmed network changes back: the apply process or its watchdog. */
  revertedBy: z.enum(["apply", "watchdog"]).optional(),
  /** Applied to an offline target: live-only steps were deferred to the first-boot resume. */
  offline: z.boolean().optional(),
  actions: z.array(journalActionSchema),
});
export type JournalRun = z.infer<typeof journalRunSchema>;

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
      schema: JOURNAL_SCHEMA_ID,
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

  /** The run, or null when it has no file. A file that is not a valid journal is an InputError naming
   *  it: acting on a corrupt journal (resuming, undoing) could do harm, and guessing hides the damage. */
  async load(runId: string): Promise<JournalRun | null> {
    const file = this.file(runId);
    let text: string;
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new InputError(`journal ${file}: cannot read (${(e as Error).message})`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new InputError(
        `journal ${file} is corrupt: not JSON (${(e as Error).message}); move it away to go on`,
      );
    }
    const r = journalRunSchema.safeParse(data);
    if (!r.success) {
      throw new InputError(`journal ${file} is corrupt: ${firstIssue(r.error)}; move it away to go on`);
    }
    if (r.data.runId !== runId)
      throw new InputError(`journal ${file} is corrupt: it holds run ${r.data.runId}`);
    return r.data;
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
  /**
   * The run created last. A run's id begins with its creation time (newRunId), so the last name is
   * the last run: only it is read, not the host's whole history (kvmstrap metrics asks this on every
   * scrape). A run removed since the listing is passed over.
   */
  async latestRun(): Promise<JournalRun | null> {
    const ids = await this.runIds();
    for (let i = ids.length - 1; i >= 0; i--) {
      const run = await this.load(ids[i] as string);
      if (run) return run;
    }
    return null;
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
    if (phase === "done" || phase === "failed" || phase === "reverted" || phase === "undone")
      run.finishedAt = new Date().toISOString();
    if (phase !== "awaiting-confirm") {
      delete run.deadline;
      delete run.confirmIds;
    }
    return this.save(run);
  }
}
