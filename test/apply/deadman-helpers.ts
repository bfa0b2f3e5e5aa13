// Shared by the dead-man switch tests: the real CLI started as its own process (so it can be killed
// with SIGKILL or hung up on), the journal read back as the watchdog leaves it, and polling with a
// bound. The CLI runs from dist/ (bin/kvmstrap.js), as installed.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { JournalRun } from "../../src/apply/journal.js";

export const BIN = path.resolve("bin/kvmstrap.js");

export interface Started {
  child: ChildProcess;
  /** Resolves with the exit code (null) and signal once the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/** Starts argv[0] with the rest (for the CLI: process.execPath, BIN, ...). */
export function start(argv: string[], env: NodeJS.ProcessEnv = {}): Started {
  const [file, ...args] = argv;
  const child = spawn(file as string, args, {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...env },
  });
  let err = "";
  child.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, stderr: () => err };
}

export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  return start([process.execPath, BIN, ...args], env);
}

/** The runs under stateDir, oldest first. */
export function runs(stateDir: string): JournalRun[] {
  const dir = path.join(stateDir, "runs");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => n.endsWith(".json") && !n.includes(".kvmstrap-tmp-"))
    .sort()
    .map((n) => JSON.parse(readFileSync(path.join(dir, n), "utf8")) as JournalRun);
}

export const latest = (stateDir: string): JournalRun | undefined => runs(stateDir).at(-1);

/** Polls until `ok` returns a truthy value (returned), or throws after timeoutMs naming `what`. */
export async function until<T>(
  what: string,
  ok: () => T | Promise<T>,
  timeoutMs = 20_000,
): Promise<NonNullable<T>> {
  const t0 = Date.now();
  for (;;) {
    try {
      const v = await ok();
      if (v) return v as NonNullable<T>;
    } catch {
      /* not yet */
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Whether the pid runs (a zombie counts as gone). */
export function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** The run once it awaits confirmation, with its deadline (the apply's stderr if it never does). */
export async function awaitingConfirm(stateDir: string, apply?: Started): Promise<JournalRun> {
  try {
    return await until(`a run awaiting confirmation in ${stateDir}`, () => {
      const r = latest(stateDir);
      return r?.phase === "awaiting-confirm" && r.deadline ? r : undefined;
    });
  } catch (e) {
    throw new Error(`${(e as Error).message}; apply said:\n${apply?.stderr() ?? "(not started here)"}`);
  }
}

/** The run once it reached `phase`. */
export const reached = (stateDir: string, phase: JournalRun["phase"], timeoutMs = 20_000) =>
  until(
    `the run in ${stateDir} to be ${phase}`,
    () => (latest(stateDir)?.phase === phase ? latest(stateDir) : undefined),
    timeoutMs,
  );
