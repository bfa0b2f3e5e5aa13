// The network dead-man switch that outlives the apply process. Before a network group's first change
// the engine arms a watcher that is not a child in any way the apply's end could take down: a
// transient systemd timer when systemd runs the machine, otherwise a detached process in its own
// session (no controlling terminal, so an SSH drop's SIGHUP never reaches it) with its output in a
// log file. Either runs `kvmstrap apply --revert-network RUNID`, which waits for the run's deadline
// and reverts unless the confirmation is journaled (network-gate.ts decides, under the run's lock).
import { spawn } from "node:child_process";
import { closeSync, existsSync, readFileSync, writeSync } from "node:fs";
import { mkdir, open, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CommandRunner } from "../host/commands.js";
import type { JournalRun } from "./journal.js";
import { processAlive } from "./network-gate.js";

export const REVERT_NETWORK_FLAG = "--revert-network";

export interface ArmRequest {
  runId: string;
  stateDir: string;
  /** The machine root the plan applies to (the watcher reverts there). */
  root: string;
  /** When the watcher should first look (the earliest possible deadline). */
  notBefore: Date;
}

export type ArmedWatchdog = { kind: "process"; pid: number } | { kind: "systemd-timer"; unit: string };

/** Starts a watcher for one run's network changes; throws when it could not be started. */
export interface Watchdog {
  kind: ArmedWatchdog["kind"];
  arm(request: ArmRequest): Promise<ArmedWatchdog>;
  /** Stops a watcher that is no longer needed (a confirmed run); best effort. */
  disarm(armed: JournalRun["watchdog"]): Promise<void>;
  /** Whether an armed watcher still exists (a re-run resuming the wait re-arms a dead one). */
  alive(armed: JournalRun["watchdog"]): Promise<boolean>;
}

let binCache: string | null = null;
/** bin/kvmstrap.js of this installation, found from this module (src/, dist/ or the TUI bundle). */
export function kvmstrapBin(): string {
  if (binCache) return binCache;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string };
      if (pkg.name === "kvmstrap" && existsSync(path.join(dir, "bin/kvmstrap.js"))) {
        binCache = path.join(dir, "bin/kvmstrap.js");
        return binCache;
      }
    } catch {
      /* not the package root yet */
    }
    dir = path.dirname(dir);
  }
  throw new Error("cannot find bin/kvmstrap.js to start the network watchdog");
}

/** The command line of the watcher (argv[0] is node). */
export function watcherArgv(r: ArmRequest): string[] {
  return [
    process.execPath,
    kvmstrapBin(),
    "apply",
    REVERT_NETWORK_FLAG,
    r.runId,
    "--root",
    path.resolve(r.root),
    "--state-dir",
    // systemd starts the watcher in /, the detached process where apply ran: absolute either way.
    path.resolve(r.stateDir),
  ];
}

const unitOf = (runId: string) => `kvmstrap-revert-${runId.replace(/[^A-Za-z0-9_-]/g, "_")}`;

/** systemd-run arguments for the transient timer that starts the watcher at `notBefore`. */
export function systemdRunArgs(r: ArmRequest, at: Date = new Date()): string[] {
  const seconds = Math.max(1, Math.ceil((r.notBefore.getTime() - at.getTime()) / 1000));
  return [
    `--unit=${unitOf(r.runId)}`,
    `--on-active=${seconds}s`,
    "--timer-property=AccuracySec=1s",
    // Unloaded once done, even when the watcher failed: one transient unit per run, none left over.
    "--collect",
    `--description=kvmstrap: revert the network changes of run ${r.runId} unless confirmed`,
    "--",
    ...watcherArgv(r),
  ];
}

/** Whether systemd is PID 1 (sd_booted: /run/systemd/system exists) and so can keep a timer. */
export const systemdIsInit = () => existsSync("/run/systemd/system");

/** A transient systemd timer: survives the apply process, its session and its cgroup. */
export function systemdWatchdog(runner: CommandRunner): Watchdog {
  return {
    kind: "systemd-timer",
    async arm(r) {
      const res = await runner.run("systemd-run", systemdRunArgs(r), { timeoutMs: 30_000 });
      if (res.exitCode !== 0)
        throw new Error(`systemd-run failed (${res.exitCode}): ${res.stderr.trim().split("\n").at(-1)}`);
      return { kind: "systemd-timer", unit: unitOf(r.runId) };
    },
    async disarm(armed) {
      if (armed?.unit)
        await runner.run("systemctl", ["stop", `${armed.unit}.timer`, `${armed.unit}.service`], {
          timeoutMs: 30_000,
        });
    },
    async alive(armed) {
      if (!armed?.unit) return false;
      const r = await runner.run("systemctl", ["is-active", "--quiet", `${armed.unit}.timer`], {
        timeoutMs: 30_000,
      });
      const s = await runner.run("systemctl", ["is-active", "--quiet", `${armed.unit}.service`], {
        timeoutMs: 30_000,
      });
      return r.exitCode === 0 || s.exitCode === 0;
    },
  };
}

const HANDSHAKE_MS = 20_000;
/** Names the pipe on which the detached watcher says it is watching. */
const HANDSHAKE_ENV = "KVMSTRAP_WATCHDOG_HANDSHAKE_FD";

/**
 * A detached watcher process: a new session (setsid through `detached`), stdin closed, output to
 * <stateDir>/log/watchdog-RUNID.log, unreferenced. It reports "armed" on fd 3 once it watches the
 * run, so a watcher that cannot start fails the arming instead of leaving a switch that is not there.
 */
export function processWatchdog(): Watchdog {
  return {
    kind: "process",
    async arm(r) {
      const logDir = path.join(r.stateDir, "log");
      await mkdir(logDir, { recursive: true });
      const log = await open(path.join(logDir, `watchdog-${r.runId}.log`), "a", 0o600);
      try {
        const [node, ...args] = watcherArgv(r);
        const child = spawn(node as string, args, {
          detached: true,
          stdio: ["ignore", log.fd, log.fd, "pipe"],
          env: { ...process.env, [HANDSHAKE_ENV]: "3" },
        });
        const channel = child.stdio[3];
        const ready = await new Promise<string | null>((resolve) => {
          let text = "";
          const done = (v: string | null) => {
            clearTimeout(timer);
            resolve(v);
          };
          const timer = setTimeout(() => done(null), HANDSHAKE_MS);
          channel?.on("data", (d: Buffer) => {
            text += d.toString();
            if (text.includes("\n")) done(text.trim());
          });
          channel?.on("error", () => {});
          child.once("error", (e) => done(`error: ${e.message}`));
          child.once("exit", (code) => done(`exited with ${code}`));
        });
        channel?.destroy();
        child.unref();
        if (ready !== "armed" || !child.pid) {
          if (child.pid && ready === null) child.kill("SIGKILL");
          throw new Error(
            `the watchdog did not start (${ready ?? "no answer"}); see ${path.join(logDir, `watchdog-${r.runId}.log`)}`,
          );
        }
        return { kind: "process", pid: child.pid };
      } finally {
        await log.close();
      }
    },
    async disarm() {
      // The watcher sees the journaled confirmation within a poll and exits by itself.
    },
    async alive(armed) {
      if (!armed?.pid) return false;
      if (!(await processAlive(armed.pid))) return false;
      const cmdline = await readFile(`/proc/${armed.pid}/cmdline`, "utf8").catch(() => "");
      return cmdline.includes(REVERT_NETWORK_FLAG);
    },
  };
}

/** The watchdog this machine supports: systemd's timer when it is PID 1, a detached process otherwise. */
export function defaultWatchdog(runner: CommandRunner, root: string): Watchdog {
  return path.resolve(root) === "/" && systemdIsInit() ? systemdWatchdog(runner) : processWatchdog();
}

/** Stops the watcher recorded in a run, whichever kind it is (a confirmed run needs none). */
export async function disarmWatchdog(armed: JournalRun["watchdog"], runner: CommandRunner): Promise<void> {
  if (armed?.kind === "systemd-timer") await systemdWatchdog(runner).disarm(armed);
  else await processWatchdog().disarm(armed);
}

/** The watcher's side of the start handshake, when a detached arming process waits for it. */
export function announceWatching(): void {
  const fd = Number(process.env[HANDSHAKE_ENV]);
  if (!Number.isInteger(fd) || fd < 3) return;
  delete process.env[HANDSHAKE_ENV];
  try {
    writeSync(fd, "armed\n");
    closeSync(fd);
  } catch {
    /* the arming process is gone already: nobody waits */
  }
}
