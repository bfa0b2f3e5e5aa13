// The appliance's boot agent: once the live system is on the network it reads the kernel command
// line, tells the boot server it is up, finds the answer (answer-source.ts), and starts an unattended
// install only when the command line says kvmstrap.auto=install AND an answer was found (otherwise
// the installer on the console asks, as on any boot). Each step is one line on the consoles
// (KVMSTRAP-AGENT: ...) and one lifecycle event to the server and to the answer's webhook. Tokens
// and secret headers never reach a log line or an event: every text leaving here is scrubbed.
// After a successful install the machine syncs and reboots (kvmstrap.after=); a failed one stays
// up, its summary on the consoles, so nobody loses the reason to a reboot loop.
import { spawn } from "node:child_process";
import { REDACTED, redact } from "../apply/events.js";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { displayUrl, type FindOptions, type FoundAnswer, findAnswer } from "./answer-source.js";
import {
  AFTER_INSTALL,
  type AfterInstall,
  AUTO_INSTALL,
  CMDLINE,
  DEFAULT_AFTER_INSTALL,
  NODE_PATHS,
  type NodeLifecycleEvent,
  type NodePhase,
  parseKernelCmdline,
} from "./node-protocol.js";

/** Where the agent keeps the answer it found, for the install and for the operator (tmpfs, 0600). */
export const AGENT_ANSWER_FILE = "/run/kvmstrap/answer.yaml";
/** Every console line starts with this; tests and operators grep for it. */
export const AGENT_MARK = "KVMSTRAP-AGENT:";

export interface PostOptions {
  attempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
  /** Longest wait between attempts. */
  maxBackoffMs?: number;
}

/** How the unattended install is run: `kvmstrap install --answer FILE --yes` by default. */
export interface Installer {
  /** Why it cannot run here, or null when it can. */
  unavailable(): Promise<string | null>;
  run(answerFile: string, log: (line: string) => void): Promise<{ ok: boolean; detail: string }>;
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
  find?: FindOptions;
  /** appliance-up waits longest: the server may not be reachable the moment the network is. */
  postUp?: PostOptions;
  post?: PostOptions;
}

export interface AgentOutcome {
  /** The last phase reached (null when the boot named no server and found no answer). */
  phase: NodePhase | null;
  exitCode: 0 | 1 | 2;
  answer?: FoundAnswer;
  /** After a good install: what was asked (kvmstrap.after=) and whether its command ran. */
  after?: { action: AfterInstall; ok: boolean };
}

type Target = { url: string; headers: Record<string, string>; secret: Record<string, string> };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends lifecycle events to the boot server and the answer's webhook, in order, with retries. */
class Reporter {
  private readonly targets: { name: string; target: Target }[] = [];
  private readonly secrets = new Set<string>();

  constructor(private readonly log: (line: string) => void) {}

  addSecret(value: string | undefined): void {
    if (value) this.secrets.add(value);
  }

  scrub(text: string): string {
    let out = text;
    for (const s of this.secrets) out = out.split(s).join(REDACTED);
    return out;
  }

  add(name: string, target: Target): void {
    for (const v of Object.values(target.secret)) this.addSecret(v);
    this.targets.push({ name, target });
  }

  get server(): Target | undefined {
    return this.targets.find((t) => t.name === "server")?.target;
  }

  /** Posts to every target; resolves with the names that took it. Never throws. */
  async report(phase: NodePhase, detail: string, o: PostOptions = {}): Promise<string[]> {
    const event: NodeLifecycleEvent = {
      type: "node",
      phase,
      time: new Date().toISOString(),
      detail: this.scrub(detail).slice(0, 2000),
    };
    const body = JSON.stringify(redact(event));
    const took: string[] = [];
    for (const { name, target } of this.targets) {
      if (await this.post(name, target, body, phase, o)) took.push(name);
    }
    return took;
  }

  private async post(name: string, t: Target, body: string, phase: string, o: PostOptions): Promise<boolean> {
    const { attempts = 5, timeoutMs = 5000, backoffMs = 1000, maxBackoffMs = 15_000 } = o;
    const shown = displayUrl(new URL(t.url));
    for (let attempt = 1; attempt <= attempts; attempt++) {
      let problem: string;
      let final = false;
      try {
        const res = await fetch(t.url, {
          method: "POST",
          headers: { "content-type": "application/json", ...t.headers, ...t.secret },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return true;
        problem = `HTTP ${res.status}`;
        final = res.status < 500 && res.status !== 429; // a refusal will not heal
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        problem =
          err.name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.message);
      }
      this.log(
        this.scrub(`${name}: POST ${shown} ${phase} failed (attempt ${attempt}/${attempts}): ${problem}`),
      );
      if (final || attempt === attempts) return false;
      await sleep(Math.min(maxBackoffMs, backoffMs * 2 ** (attempt - 1)));
    }
    return false;
  }
}

/** The answer's report.webhook as a target: secret headers (by name) kept apart for scrubbing. */
function webhookTarget(report: FoundAnswer["answer"]["report"]): Target | null {
  if (!report?.webhook) return null;
  const secretNames = new Set(report.secretHeaders.map((h) => h.toLowerCase()));
  const headers: Record<string, string> = {};
  const secret: Record<string, string> = {};
  for (const [k, v] of Object.entries(report.headers))
    (secretNames.has(k.toLowerCase()) ? secret : headers)[k] = v;
  return { url: report.webhook, headers, secret };
}

function serverTarget(
  params: Map<string, string>,
  say: (l: string) => void,
): { base: URL; target: Target } | null {
  const server = params.get(CMDLINE.server);
  if (!server) return null;
  let base: URL;
  try {
    base = new URL(server);
    if (base.protocol !== "http:" && base.protocol !== "https:") throw new Error("not http(s)");
  } catch {
    say(`${CMDLINE.server}=${server} is not an http(s) URL: nothing is reported to a boot server`);
    return null;
  }
  const node = params.get(CMDLINE.node)?.toLowerCase();
  if (!node) {
    say(`${CMDLINE.server} is set but ${CMDLINE.node} is not: nothing is reported to the boot server`);
    return null;
  }
  const token = params.get(CMDLINE.token);
  const url = new URL(NODE_PATHS.events(node), base.href.replace(/\/+$/, "/")).href;
  return {
    base,
    target: { url, headers: {}, secret: token ? { authorization: `Bearer ${token}` } : {} },
  };
}

/** Runs the agent once. Never throws for what the boot brings (bad parameters, a server away). */
export async function runAgent(o: AgentOptions): Promise<AgentOutcome> {
  const params = parseKernelCmdline(o.cmdline);
  const reporter = new Reporter(o.log);
  reporter.addSecret(params.get(CMDLINE.token));
  const say = (line: string) => o.say(`${AGENT_MARK} ${reporter.scrub(line)}`);
  const log = (line: string) => o.log(reporter.scrub(line));

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

  const afterSpec = params.get(CMDLINE.after) ?? DEFAULT_AFTER_INSTALL;
  if (!(AFTER_INSTALL as readonly string[]).includes(afterSpec)) {
    const why = `${CMDLINE.after}=${afterSpec}: not one of ${AFTER_INSTALL.join(", ")}`;
    say(`FAILED: ${why}`);
    await reporter.report("failed", why, o.post);
    return { phase: "failed", exitCode: 2 };
  }
  const after = afterSpec as AfterInstall;

  let found: FoundAnswer | null;
  try {
    const token = params.get(CMDLINE.token);
    found = await findAnswer(params, {
      ...o.find,
      http: {
        ...o.find?.http,
        bearer: server && token ? { origin: server.base.origin, token } : undefined,
        onRetry: log,
      },
    });
  } catch (e) {
    const why = e instanceof InputError ? e.message : `unexpected: ${(e as Error).message}`;
    say(`answer: FAILED: ${why.split("\n").join("; ")}`);
    await reporter.report("failed", `answer: ${why}`, o.post);
    return { phase: "failed", exitCode: 2 };
  }
  if (!found) {
    say(`no answer (${CMDLINE.answer}= not set, none in the image): the installer on the console asks`);
    return { phase, exitCode: 0 };
  }

  await writeFileAtomic(o.answerFile ?? AGENT_ANSWER_FILE, found.text, 0o600);
  const hook = webhookTarget(found.answer.report);
  // A boot server points the answers it serves at its own intake: one copy of each event is enough.
  const same = (a: string, b: string | undefined) => b !== undefined && new URL(a).href === new URL(b).href;
  if (hook && !same(hook.url, server?.target.url)) reporter.add("webhook", hook);
  else if (hook) for (const v of Object.values(hook.secret)) reporter.addSecret(v);
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
  const result = await o.installer.run(o.answerFile ?? AGENT_ANSWER_FILE, log);
  if (!result.ok) {
    await reporter.report("failed", result.detail, o.post);
    say(`install: FAILED: ${result.detail}`);
    say("the live system stays up: the reason is above and in journalctl -u kvmstrap-agent");
    return { phase: "failed", exitCode: 1, answer: found };
  }
  phase = "installed";
  await reporter.report(phase, `${result.detail} (next: ${after})`, o.post);
  say(`installed: ${result.detail}`);
  const ok = await finish(after, o.power, o.runner ?? new ExecaRunner(), say, log);
  return { phase, exitCode: ok ? 0 : 1, answer: found, after: { action: after, ok } };
}

/**
 * Syncs, then reboots or powers off (or stays). The events went out before this: a reboot that
 * cut them off would leave the server waiting for an "installed" that never came.
 */
async function finish(
  after: AfterInstall,
  power: PowerCommands,
  runner: CommandRunner,
  say: (l: string) => void,
  log: (l: string) => void,
): Promise<boolean> {
  const steps = after === "stay" ? [power.sync] : [power.sync, power[after]];
  say(
    after === "stay"
      ? `${CMDLINE.after}=stay: the live system stays up; reboot into the installed disk when ready`
      : `${after === "reboot" ? "rebooting" : "powering off"} (${CMDLINE.after}=${after})`,
  );
  for (const [cmd, ...args] of steps) {
    if (!cmd) continue;
    const r = await runner.run(cmd, args, { timeoutMs: 120_000 });
    const shown = [cmd, ...args].join(" ");
    const out = `${r.stdout}\n${r.stderr}`.trim();
    for (const line of out.split("\n")) if (line.trim()) log(`${shown}: ${line}`);
    if (r.exitCode !== 0) {
      const why = r.timedOut ? "did not finish within 120 s" : `exited ${r.exitCode ?? "abnormally"}`;
      const tail = out.split("\n").at(-1)?.trim();
      say(`${after}: FAILED: ${shown} ${why}${tail ? `: ${tail}` : ""}; the installed disk is written`);
      return false;
    }
  }
  return true;
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
      const take = (d: Buffer) => {
        const text = d.toString();
        out = (out + text).slice(-8000);
        for (const line of text.split("\n")) if (line.trim()) onLine?.(line);
      };
      child.stdout.on("data", take);
      child.stderr.on("data", take);
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
    async run(answerFile, log) {
      const r = await exec(["install", "--answer", answerFile, "--yes"], (l) => log(`install: ${l}`));
      const tail = r.out.trim().split("\n").filter(Boolean).at(-1) ?? "";
      return r.code === 0
        ? { ok: true, detail: tail || "kvmstrap install finished" }
        : {
            ok: false,
            detail: `kvmstrap install exited ${r.code ?? "abnormally"}${tail ? `: ${tail}` : ""}`,
          };
    },
  };
}
