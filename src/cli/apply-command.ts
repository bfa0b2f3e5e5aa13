// `kvmstrap apply`, `kvmstrap undo`, `kvmstrap confirm`: the CLI face of the apply engine. Progress
// goes to stderr as one line per step; --events adds the JSON-lines stream (to a file or stdout) and
// every run is also logged on disk under <state-dir>/log.
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline/promises";
import type { Writable } from "node:stream";
import type { Answer } from "../answer/schema.js";
import { adaptersFor, libvirtAt, stateDirOf } from "../app/adapters.js";
import { confirmNetwork, planToResume, runApply, runUndo } from "../app/apply.js";
import { blockers, prepareFile } from "../app/prepare.js";
import type { ApplyResult } from "../apply/engine.js";
import { EventBus, fileLogSink, formatEvent, jsonLinesSink } from "../apply/events.js";
import { Journal } from "../apply/journal.js";
import { processAlive, watchNetworkGate } from "../apply/network-gate.js";
import { isOfflineTarget } from "../apply/offline.js";
import { validatePlan } from "../apply/plan-file.js";
import { announceWatching } from "../apply/watchdog.js";
import type { Plan } from "../plan/actions.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";

export const APPLY_HELP = `Usage: kvmstrap apply (FILE | --plan PLAN.json) [options]
       kvmstrap apply --resume

Carry out a plan: from the answer file FILE (validated and planned against this machine now; any
error refuses the whole run) or from PLAN.json (what "kvmstrap plan FILE --json" prints). Without a
terminal it needs --yes. A disk is wiped only when the answer names it by byId or serial, on every
run. Every change is journaled under --state-dir, files are replaced atomically, and "kvmstrap undo" puts everything back. Running apply again changes nothing
once the machine is in the planned state; after an interruption it completes the plan.

Network changes run on a timer: unless "kvmstrap confirm" (or "yes" at the prompt) arrives within
--confirm-timeout seconds, they are reverted, so a bad bridge cannot lock you out. The timer is a
watchdog of its own (a systemd timer, or a detached process): it fires even when apply is killed or
its SSH session drops, and running the same apply again before the deadline goes back to waiting.
Changes that need a reboot stop the run; after the reboot "kvmstrap apply --resume" (a first-boot
unit) goes on.

Options:
  --plan PLAN.json       Apply this plan (JSON) instead of planning an answer file
  --dry-run              Show every operation it would carry out; change nothing
  --yes                  Do not ask before applying (required when there is no terminal)
  --resume               Continue the last run (after a reboot or an interruption)
  --events FILE|-        Also write the event stream as JSON lines to FILE, or stdout with -
  --root DIR             Apply to the machine root DIR (default /): files and sysfs writes go under
                         DIR and commands run inside it with chroot (an installer's target)
  --state-dir DIR        Journal and logs (default <root>/var/lib/kvmstrap)
  --connect URI          libvirt connection for the plan's networks and VMs (default qemu:///system)
  --confirm-timeout S    Seconds to confirm a network change before it reverts (default: the
                         answer's network.confirmTimeoutSeconds, else 120)
  --offline, --online    Whether the root is a running machine. Offline (the default when --root is
                         not /), steps that act on the running kernel, network or services (sysfs,
                         hostname, modprobe, network reloads, virsh) are skipped and left for the
                         first-boot "kvmstrap apply --resume" on the target
  -h, --help             Print this help

Exit: 0 applied (or waiting for the reboot), 1 a step failed or a network change was reverted,
2 usage or input error.
`;

export const UNDO_HELP = `Usage: kvmstrap undo [options]

Revert the last apply or "vm deploy" that changed something (both journal under --state-dir),
newest change first: files get their previous content back (or are removed if they did not exist),
sysfs attributes their previous value, commands run their undo command, and a deployed VM is
stopped, undefined and its overlay and seed removed (through qemu:///system). Run it again to undo
the run before that.

Options:
  --dry-run              Show what it would put back; change nothing
  --yes                  Do not ask first (required when there is no terminal)
  --events FILE|-        Also write the event stream as JSON lines to FILE, or stdout with -
  --root DIR             The machine root (default /)
  --state-dir DIR        Journal directory (default <root>/var/lib/kvmstrap)
  --connect URI          libvirt connection the run's networks and VMs are on (default qemu:///system)
  -h, --help             Print this help
`;

export const CONFIRM_HELP = `Usage: kvmstrap confirm [RUN-ID] [options]

Keep the network changes of the running apply (default: the latest run, which must be waiting for
confirmation). Without it the changes are reverted when the timer runs out. Run it from a new
connection: if you can run it, the new network works.

Options:
  --root DIR             The machine root (default /)
  --state-dir DIR        Journal directory (default <root>/var/lib/kvmstrap)
  -h, --help             Print this help
`;

const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(question)).trim().toLowerCase();
  } finally {
    rl.close();
  }
}

/** The bus with the human stderr lines and --events (the app adds the on-disk log and the webhook). */
function makeBus(events: string | undefined): { bus: EventBus; close: () => Promise<void> } {
  const bus = new EventBus((e) => process.stderr.write(`kvmstrap: event sink: ${(e as Error).message}\n`));
  bus.subscribe((e) => {
    const line = formatEvent(e);
    if (line) process.stderr.write(`${line}\n`);
  });
  let stream: Writable | null = null;
  const lost = (e: Error) =>
    process.stderr.write(`kvmstrap: --events ${events}: ${e.message}; the events stay in the log on disk\n`);
  if (events === "-") bus.subscribe(jsonLinesSink(process.stdout, lost));
  else if (events) {
    stream = createWriteStream(events, { flags: "a" });
    bus.subscribe(jsonLinesSink(stream, lost));
  }
  const close = async () => {
    await bus.drain(15_000);
    if (stream) await new Promise<void>((r) => stream?.end(r));
  };
  return { bus, close };
}

async function loadPlanFile(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`--plan ${file}: ${code === "ENOENT" ? "no such file" : `cannot read (${code})`}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--plan ${file}: not JSON (${(e as Error).message})`);
  }
  return validatePlan(data, file);
}

function exitOf(r: ApplyResult): number {
  if (r.status === "awaiting-reboot") {
    process.stderr.write(
      'kvmstrap: reboot now; then run "kvmstrap apply --resume" (or let the first-boot unit do it)\n',
    );
  }
  return r.status === "failed" || r.status === "reverted" ? EXIT.failed : EXIT.ok;
}

export const APPLY_OPTIONS = {
  plan: { type: "string" },
  "dry-run": { type: "boolean" },
  yes: { type: "boolean" },
  resume: { type: "boolean" },
  events: { type: "string" },
  root: { type: "string" },
  "state-dir": { type: "string" },
  "confirm-timeout": { type: "string" },
  connect: { type: "string" },
  offline: { type: "boolean" },
  online: { type: "boolean" },
  "revert-network": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function applyCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, APPLY_OPTIONS);
  if (values.help) {
    process.stdout.write(APPLY_HELP);
    return EXIT.ok;
  }
  if (values["revert-network"] !== undefined)
    return revertNetworkCommand(values["revert-network"], values.root ?? "/", values["state-dir"]);
  if (values.offline && values.online) throw new UsageError("give --offline or --online, not both");
  const liveness = values.offline ? "offline" : values.online ? "online" : undefined;
  const [file, extra] = positionals;
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (file && values.plan) throw new UsageError("give either an answer FILE or --plan PLAN.json, not both");
  if (!file && !values.plan && !values.resume) {
    throw new UsageError("apply needs an answer file or --plan PLAN.json (or --resume)");
  }
  const dryRun = Boolean(values["dry-run"]);
  if (dryRun && values.resume) throw new UsageError("--dry-run and --resume do not go together");
  let timeoutSeconds: number | undefined;
  if (values["confirm-timeout"] !== undefined) {
    timeoutSeconds = Number(values["confirm-timeout"]);
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1 || timeoutSeconds > 86_400) {
      throw new UsageError(
        `--confirm-timeout must be whole seconds from 1 to 86400, not "${values["confirm-timeout"]}"`,
      );
    }
  }
  const root = values.root ?? "/";
  const stateDir = stateDirOf(root, values["state-dir"]);
  const tty = interactive();
  if (!dryRun && !values.yes && !tty)
    throw new UsageError("no terminal to ask on: use --yes for unattended runs");

  let plan: Plan;
  let answer: Answer | null = null;
  if (values.plan) plan = await loadPlanFile(values.plan);
  else if (file) {
    const prepared = await prepareFile(file, { root });
    const blocking = blockers(prepared);
    if (blocking.length) {
      throw new InputError(
        `the answer cannot be applied to this machine (${blocking.length} problem(s)); fix the answer file first:\n${blocking.map((l) => `  ${l}`).join("\n")}`,
      );
    }
    ({ plan, answer } = prepared);
  } else plan = await planToResume(root, values["state-dir"]);
  if (values.plan && plan.refusals.length > 0) {
    const lines = plan.refusals.map((r) => `  ${r.path}: ${r.reason}`).join("\n");
    throw new InputError(
      `the plan refused ${plan.refusals.length} item(s); fix the answer file first:\n${lines}`,
    );
  }
  if (!dryRun && !values.yes) {
    const where = path.resolve(root) === "/" ? "this machine" : path.resolve(root);
    const reply = await ask(`Apply ${plan.actions.length} action(s) to ${where}? [y/N] `);
    if (reply !== "y" && reply !== "yes") {
      process.stderr.write("kvmstrap: nothing changed\n");
      return EXIT.ok;
    }
  }
  const { bus, close } = makeBus(values.events);
  try {
    const result = await runApply(plan, {
      root,
      stateDir,
      bus,
      dryRun,
      answer,
      resume: Boolean(values.resume),
      offline: isOfflineTarget(root, liveness),
      confirmTimeoutSeconds: timeoutSeconds,
      ...(values.connect ? { adapters: { libvirt: libvirtAt(values.connect) } } : {}),
      // At a terminal, "yes" at the prompt confirms too; if the change cut the session, nobody types.
      waitForConfirm:
        tty && !values.yes
          ? async () => ["y", "yes"].includes(await ask("Network changed. Keep it? Type yes to keep: "))
          : undefined,
    });
    return exitOf(result);
  } finally {
    await close();
  }
}

export const UNDO_OPTIONS = {
  "dry-run": { type: "boolean" },
  yes: { type: "boolean" },
  events: { type: "string" },
  root: { type: "string" },
  "state-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
  connect: { type: "string" },
} as const satisfies OptionTable;

export async function undoCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, UNDO_OPTIONS);
  if (values.help) {
    process.stdout.write(UNDO_HELP);
    return EXIT.ok;
  }
  if (positionals[0]) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const root = values.root ?? "/";
  const stateDir = stateDirOf(root, values["state-dir"]);
  const dryRun = Boolean(values["dry-run"]);
  if (!dryRun && !values.yes) {
    if (!interactive()) throw new UsageError("no terminal to ask on: use --yes for unattended runs");
    const answer = await ask(`Undo the last apply under ${stateDir}? [y/N] `);
    if (answer !== "y" && answer !== "yes") return EXIT.ok;
  }
  const { bus, close } = makeBus(values.events);
  try {
    const adapters = values.connect ? { adapters: { libvirt: libvirtAt(values.connect) } } : {};
    const r = await runUndo({ root, stateDir, bus, dryRun, ...adapters });
    return r.status === "failed" ? EXIT.failed : EXIT.ok;
  } finally {
    await close();
  }
}

export const CONFIRM_OPTIONS = {
  root: { type: "string" },
  "state-dir": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function confirmCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, CONFIRM_OPTIONS);
  if (values.help) {
    process.stdout.write(CONFIRM_HELP);
    return EXIT.ok;
  }
  const [runId, extra] = positionals;
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const id = await confirmNetwork(values.root ?? "/", values["state-dir"], runId);
  process.stderr.write(`kvmstrap: confirmed the network changes of run ${id}\n`);
  await hintWhenApplyIsGone(stateDirOf(values.root ?? "/", values["state-dir"]), id);
  return EXIT.ok;
}

/** A confirmation outlives a killed apply, but the rest of its plan needs the apply run again. */
async function hintWhenApplyIsGone(stateDir: string, runId: string): Promise<void> {
  const run = await new Journal(stateDir).load(runId).catch(() => null);
  if (!run?.owner || (await processAlive(run.owner.pid, run.owner.startTime))) return;
  process.stderr.write(
    "kvmstrap: the apply that made them is no longer running: run the same apply again to finish the plan\n",
  );
}

/**
 * The network watchdog (hidden: started by apply itself, see apply/watchdog.ts): waits for the run's
 * confirm deadline and reverts its network changes unless they are confirmed. Immune to SIGHUP.
 */
async function revertNetworkCommand(runId: string, root: string, stateDirFlag?: string): Promise<number> {
  process.on("SIGHUP", () => {});
  const stateDir = stateDirOf(root, stateDirFlag);
  const { target, runner } = adaptersFor(root);
  const { bus, close } = makeBus(undefined);
  bus.subscribe(fileLogSink(path.join(stateDir, "log")));
  try {
    if (!(await new Journal(stateDir).load(runId)))
      throw new InputError(`no apply run ${runId} under ${stateDir}`);
    process.stderr.write(`kvmstrap: watching the network changes of run ${runId} (pid ${process.pid})\n`);
    announceWatching();
    const outcome = await watchNetworkGate({ target, runner, stateDir, bus }, runId);
    process.stderr.write(`kvmstrap: run ${runId}: ${outcome}\n`);
    return EXIT.ok;
  } finally {
    await close();
  }
}
