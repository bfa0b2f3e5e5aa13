// The appliance's boot agent: once the live system is on the network it reads the kernel command
// line, tells the boot server it is up, finds the answer (answer-source.ts), and starts an unattended
// install only when the command line says kvmstrap.auto=install AND an answer was found (otherwise
// the installer on the console asks, as on any boot). Each step is one line on the consoles
// (KVMSTRAP-AGENT: ...) and one lifecycle event to the server and to the answer's webhook. Tokens
// and secret headers never reach a log line or an event: every text leaving here is scrubbed.
// After a successful install the machine syncs and reboots (kvmstrap.after=); a failed one stays
// up, its summary on the consoles, so nobody loses the reason to a reboot loop.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import {
  AnswerNotServedYet,
  displayUrl,
  type FindOptions,
  type FoundAnswer,
  findAnswer,
} from "./answer-source.js";
import { type DiscoverOptions, pollUntilServed, type WaitInput, waitForApproval } from "./fleet-discover.js";
import { ALREADY_INSTALLED } from "./install-marker.js";
import { describeSyslog, type LineForwarder, parseSyslogTarget, startSyslog } from "./log-forward.js";
import {
  AFTER_INSTALL,
  type AfterInstall,
  AUTO_INSTALL,
  CMDLINE,
  DEFAULT_AFTER_INSTALL,
  DISCOVER_MODE,
  type NodePhase,
  parseKernelCmdline,
} from "./node-protocol.js";
import { answerSecrets, type PostOptions, Reporter, serverTarget, webhookTarget } from "./node-report.js";

export type { PostOptions } from "./node-report.js";

/** Where the agent keeps the answer it found, for the install and for the operator (tmpfs, 0600). */
export const AGENT_ANSWER_FILE = "/run/kvmstrap/answer.yaml";
/** Every console line starts with this; tests and operators grep for it. */
export const AGENT_MARK = "KVMSTRAP-AGENT:";

/** How the unattended install is run: `kvmstrap install --answer FILE --yes` by default. */
export interface Installer {
  /** Why it cannot run here, or null when it can. */
  unavailable(): Promise<string | null>;
  /** force: erase a disk that already holds this answer's install (kvmstrap.reinstall=1). */
  run(
    answerFile: string,
    log: (line: string) => void,
    force?: boolean,
  ): Promise<{ ok: boolean; detail: string }>;
}

/** The commands that end the live system after a good install (argv each; the first is the program). */
export interface PowerCommands {
  sync: readonly string[];
  reboot: readonly string[];
  poweroff: readonly string[];
}

/** The live system's own: systemd takes the machine down in order (units stopped, disks synced). */
export const SYSTEM_POWER: PowerCommands = {
  sync: ["sync"],
  reboot: ["systemctl", "reboot"],
  poweroff: ["systemctl", "poweroff"],
};

export interface AgentOptions {
  cmdline: string;
  /** One line on the consoles (already scrubbed). */
  say: (line: string) => void;
  /** Details for the journal (already scrubbed). */
  log: (line: string) => void;
  installer: Installer;
  /** Required, so that no caller (a test above all) reboots a machine by leaving it out. */
  power: PowerCommands;
  /** Runs the power commands (default execa). */
  runner?: CommandRunner;
  answerFile?: string;
  /** The syslog sender (default util-linux's logger on PATH). */
  syslogProgram?: string | undefined;
  find?: FindOptions;
  /** appliance-up waits longest: the server may not be reachable the moment the network is. */
  postUp?: PostOptions;
  post?: PostOptions;
  /** kvmstrap.mode=discover: how the report is taken and how long the waits for approval are. */
  discover?: DiscoverOptions;
}

export interface AgentOutcome {
  /** The last phase reached (null when the boot named no server and found no answer). */
  phase: NodePhase | null;
  exitCode: 0 | 1 | 2;
  answer?: FoundAnswer;
  /** After a good install: what was asked (kvmstrap.after=) and whether its command ran. */
  after?: { action: AfterInstall; ok: boolean };
}

/** Runs the agent once. Never throws for what the boot brings (bad parameters, a server away). */
export async function runAgent(o: AgentOptions): Promise<AgentOutcome> {
  const params = parseKernelCmdline(o.cmdline);
  let forward: LineForwarder | null = null;
  // Every line goes to its own place and, scrubbed, to the remote syslog when one is asked for.
  const reporter = new Reporter((line) => log(line));
  reporter.addSecret(params.get(CMDLINE.token));
  const say = (line: string) => {
    const text = `${AGENT_MARK} ${reporter.scrub(line)}`;
    o.say(text);
    forward?.send(text, /FAILED/.test(line) ? "err" : "notice");
  };
  const log = (line: string) => {
    const text = reporter.scrub(line);
    o.log(text);
    forward?.send(text, "info");
  };
  const refuse = async (why: string): Promise<AgentOutcome> => {
    say(`FAILED: ${why}`);
    await reporter.report("failed", why, o.post);
    return { phase: "failed", exitCode: 2 };
  };

  let syslogProblem: string | null = null;
  const syslogSpec = params.get(CMDLINE.syslog);
  if (syslogSpec) {
    try {
      const target = parseSyslogTarget(syslogSpec);
      forward = startSyslog(target, (problem) => say(problem), { program: o.syslogProgram });
      say(`lines also go to syslog at ${describeSyslog(target)}`);
    } catch (e) {
      syslogProblem = (e as Error).message;
    }
  }
  const flush = async () => {
    await forward?.close();
  };
  try {
    return await agentSteps({ o, params, reporter, say, log, refuse, syslogProblem, flush });
  } finally {
    await forward?.close();
  }
}

/** What the agent's steps share: its options, the command line, and where lines and events go. */
interface Ctx {
  o: AgentOptions;
  params: Map<string, string>;
  reporter: Reporter;
  say: (line: string) => void;
  log: (line: string) => void;
  /** Says and reports a bad kvmstrap.* parameter: exit 2, nothing acted on. */
  refuse: (why: string) => Promise<AgentOutcome>;
  syslogProblem: string | null;
  /** Sends every line so far to the remote syslog (and ends forwarding). */
  flush: () => Promise<void>;
}

/** How often a discovered node goes back to waiting when its answer is not served after all. */
const MAX_WAIT_ROUNDS = 20;

async function agentSteps(c: Ctx): Promise<AgentOutcome> {
  const { o, params, reporter, say, log, refuse, syslogProblem } = c;
  const server = serverTarget(params, say);
  let phase: NodePhase | null = null;
  if (server) {
    reporter.add("server", server.target);
    phase = "appliance-up";
    const took = await reporter.report(phase, "the live appliance is up", o.postUp ?? { attempts: 10 });
    const shown = displayUrl(server.base);
    say(
      took.includes("server")
        ? `appliance-up reported to ${shown}`
        : `appliance-up NOT reported to ${shown} (see journalctl -u kvmstrap-agent)`,
    );
  }

  // The parameters are checked before anything acts on them: a typo is said now, not after an install.
  if (syslogProblem) return refuse(syslogProblem);
  const afterSpec = params.get(CMDLINE.after) ?? DEFAULT_AFTER_INSTALL;
  if (!(AFTER_INSTALL as readonly string[]).includes(afterSpec))
    return refuse(`${CMDLINE.after}=${afterSpec}: not one of ${AFTER_INSTALL.join(", ")}`);
  const after = afterSpec as AfterInstall;

  // Discovery: report this machine to the fleet and wait (hold before destroy) until approved.
  const mode = params.get(CMDLINE.mode);
  if (mode !== undefined && mode !== DISCOVER_MODE)
    return refuse(`${CMDLINE.mode}=${mode}: not ${DISCOVER_MODE}`);
  // The token for the answer fetch: the boot's, or the newer one a long wait for approval was given.
  let token = params.get(CMDLINE.token);
  let waitInput: WaitInput | undefined;
  if (mode === DISCOVER_MODE) {
    if (!server)
      return refuse(`${CMDLINE.mode}=${DISCOVER_MODE} needs ${CMDLINE.server} and ${CMDLINE.node}`);
    const answerUrl = params.get(CMDLINE.answer);
    if (!answerUrl) return refuse(`${CMDLINE.mode}=${DISCOVER_MODE} needs ${CMDLINE.answer}`);
    waitInput = {
      reporter,
      node: params.get(CMDLINE.node) as string,
      answerUrl,
      token: params.get(CMDLINE.token),
      say,
      log,
      ...(o.discover ? { o: o.discover } : {}),
    };
    const waited = await waitForApproval(waitInput);
    if (!waited.ok) {
      await reporter.report("failed", waited.why, o.post);
      return { phase: "failed", exitCode: 1 };
    }
    token = waited.token;
  }

  let found: FoundAnswer | null = null;
  for (let round = 1; ; round++) {
    try {
      found = await findAnswer(params, {
        ...o.find,
        http: {
          ...o.find?.http,
          bearer: server && token ? { origin: server.base.origin, token } : undefined,
          onRetry: log,
        },
      });
      break;
    } catch (e) {
      // A discovered node's approval can be overtaken between the poll and this fetch (a rollout
      // started: the node waits for its wave): back to waiting, a bounded number of times.
      if (waitInput && e instanceof AnswerNotServedYet && round < MAX_WAIT_ROUNDS) {
        say(`answer: not served yet (${e.message}); waiting again`);
        const waited = await pollUntilServed({ ...waitInput, token });
        if (waited.ok) {
          token = waited.token;
          continue;
        }
        await reporter.report("failed", waited.why, o.post);
        return { phase: "failed", exitCode: 1 };
      }
      const why = e instanceof InputError ? e.message : `unexpected: ${(e as Error).message}`;
      say(`answer: FAILED: ${why.split("\n").join("; ")}`);
      await reporter.report("failed", `answer: ${why}`, o.post);
      return { phase: "failed", exitCode: 2 };
    }
  }
  if (!found) {
    say(`no answer (${CMDLINE.answer}= not set, none in the image): the installer on the console asks`);
    return { phase, exitCode: 0 };
  }

  // From here on the answer's own secrets (password hashes, the webhook's secret headers) may show
  // up in what the install prints: they are scrubbed like the token.
  for (const v of answerSecrets(found.answer)) reporter.addSecret(v);
  await writeFileAtomic(o.answerFile ?? AGENT_ANSWER_FILE, found.text, 0o600);
  const hook = webhookTarget(found.answer.report);
  // A boot server points the answers it serves at its own intake: one copy of each event is enough.
  const same = (a: string, b: string | undefined) => b !== undefined && new URL(a).href === new URL(b).href;
  if (hook && !same(hook.url, server?.target.url)) reporter.add("webhook", hook);
  else if (hook) {
    // The server's own intake: its answer carries a token issued at this fetch, newer than the boot's.
    const auth = Object.entries({ ...hook.headers, ...hook.secret }).find(
      ([k]) => k.toLowerCase() === "authorization",
    )?.[1];
    const fresh = /^Bearer\s+(\S+)$/i.exec(auth ?? "")?.[1];
    if (fresh) reporter.setServerToken(fresh);
  }
  phase = "answer-fetched";
  await reporter.report(phase, `answer from ${found.source} (sha256 ${found.sha256})`, o.post);
  say(`answer-fetched from ${found.source} (sha256 ${found.sha256.slice(0, 16)}...)`);

  if (params.get(CMDLINE.auto) !== AUTO_INSTALL) {
    say(
      `${CMDLINE.auto}=${AUTO_INSTALL} is not on the command line: no unattended install; the installer on the console asks`,
    );
    return { phase, exitCode: 0, answer: found };
  }

  const missing = await o.installer.unavailable();
  if (missing) {
    say(`install: FAILED: ${missing}`);
    await reporter.report("failed", `install: ${missing}`, o.post);
    return { phase: "failed", exitCode: 1, answer: found };
  }
  phase = "installing";
  await reporter.report(
    phase,
    `kvmstrap install --answer ${o.answerFile ?? AGENT_ANSWER_FILE} --yes`,
    o.post,
  );
  say("installing (unattended: kvmstrap.auto=install and an answer)");
  const result = await o.installer.run(
    o.answerFile ?? AGENT_ANSWER_FILE,
    log,
    params.get(CMDLINE.reinstall) === "1",
  );
  if (!result.ok) {
    await reporter.report("failed", result.detail, o.post);
    say(`install: FAILED: ${result.detail}`);
    say("the live system stays up: the reason is above and in journalctl -u kvmstrap-agent");
    return { phase: "failed", exitCode: 1, answer: found };
  }
  const already = result.detail.replace(/^kvmstrap: /, "");
  if (already.startsWith(ALREADY_INSTALLED)) {
    // The stick booted again after the install: rebooting would only come back here.
    phase = "installed";
    await reporter.report(phase, already, o.post);
    say(already);
    say("not rebooting: the live system stays up (the installer is on the console)");
    return { phase, exitCode: 0, answer: found, after: { action: "stay", ok: true } };
  }
  phase = "installed";
  await reporter.report(phase, `${result.detail} (next: ${after})`, o.post);
  say(`installed: ${result.detail}`);
  const ok = await finish(after, o.power, c);
  return { phase, exitCode: ok ? 0 : 1, answer: found, after: { action: after, ok } };
}

/**
 * Syncs, then reboots or powers off (or stays). The events went out before this: a reboot that
 * cut them off would leave the server waiting for an "installed" that never came.
 */
async function finish(after: AfterInstall, power: PowerCommands, c: Ctx): Promise<boolean> {
  const { say } = c;
  say(
    after === "stay"
      ? `${CMDLINE.after}=stay: the live system stays up; reboot into the installed disk when ready`
      : `${after === "reboot" ? "rebooting" : "powering off"} (${CMDLINE.after}=${after})`,
  );
  const runner = c.o.runner ?? new ExecaRunner();
  const run = async (argv: readonly string[]): Promise<boolean> => {
    const [cmd, ...args] = argv;
    if (!cmd) return true;
    const r = await runner.run(cmd, args, { timeoutMs: 120_000 });
    const shown = argv.join(" ");
    const out = `${r.stdout}\n${r.stderr}`.trim();
    for (const line of out.split("\n")) if (line.trim()) c.log(`${shown}: ${line}`);
    if (r.exitCode === 0) return true;
    const why = r.timedOut ? "did not finish within 120 s" : `exited ${r.exitCode ?? "abnormally"}`;
    const tail = out.split("\n").at(-1)?.trim();
    say(`${after}: FAILED: ${shown} ${why}${tail ? `: ${tail}` : ""}; the installed disk is written`);
    return false;
  };
  if (!(await run(power.sync))) return false;
  if (after === "stay") return true;
  // The remote syslog gets every line up to here before the machine goes down (logger sends what
  // it read once its input ends); should the power command fail, that line stays local.
  await c.flush();
  return run(power[after]);
}

/**
 * `kvmstrap install --answer FILE --yes` as a child process (its output to the journal). `kvmstrap`
 * is the argv that starts this kvmstrap (node and its entry point), so the install matches the agent.
 */
export function commandInstaller(kvmstrap: readonly string[]): Installer {
  const [cmd, ...pre] = kvmstrap;
  if (!cmd) throw new Error("commandInstaller: empty command");
  const exec = (args: string[], onLine?: (l: string) => void) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(cmd, [...pre, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      // Whole lines only: a secret cut in two by a pipe read would escape the scrubber.
      const take = (line: string) => {
        out = `${out}${line}\n`.slice(-8000);
        if (line.trim()) onLine?.(line);
      };
      createInterface({ input: child.stdout, crlfDelay: Infinity }).on("line", take);
      createInterface({ input: child.stderr, crlfDelay: Infinity }).on("line", take);
      child.on("error", (e) => resolve({ code: null, out: e.message }));
      child.on("close", (code) => resolve({ code, out }));
    });
  return {
    async unavailable() {
      // The install command's own help says whether it takes an answer file: an image built before
      // `kvmstrap install` existed answers "not built yet" and has no --answer.
      const r = await exec(["install", "--help"]);
      return r.code === 0 && /--answer\b/.test(r.out)
        ? null
        : "kvmstrap install is not available in this image";
    },
    async run(answerFile, log, force) {
      const r = await exec(["install", "--answer", answerFile, "--yes", ...(force ? ["--force"] : [])], (l) =>
        log(`install: ${l}`),
      );
      const lines = r.out.trim().split("\n").filter(Boolean);
      const tail = lines.at(-1) ?? "";
      if (r.code === 0) return { ok: true, detail: tail || "kvmstrap install finished" };
      return {
        ok: false,
        detail: `kvmstrap install exited ${r.code ?? "abnormally"}${lines.length ? `: ${failureSummary(lines)}` : ""}`,
      };
    },
  };
}

/**
 * The install's own words for why it stopped: its closing error ("kvmstrap: ...", with the reasons
 * and fixes under it) when that is among the last lines, else its last line (the engine's FAILED
 * line). One line, for the consoles and the events.
 */
function failureSummary(lines: string[]): string {
  const last = lines.slice(-12);
  const from = last.findLastIndex((l) => l.startsWith("kvmstrap: "));
  const picked = from < 0 ? last.slice(-1) : last.slice(from);
  return picked
    .map((l) => l.trim().replace(/^kvmstrap: /, ""))
    .join("; ")
    .slice(0, 1500);
}
