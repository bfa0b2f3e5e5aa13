// What the appliance tells others about itself: lifecycle events to the boot server (bearer token)
// and to the answer's report.webhook (its secret headers kept apart), in order, with retries; and
// the one scrubber every text leaving the agent goes through, fed with each secret as it is learnt
// (the token, the webhook's secret headers, the answer's secret fields).

import type { Answer } from "../answer/schema.js";
import { REDACTED, redact } from "../apply/events.js";
import { displayUrl, type FoundAnswer } from "./answer-source.js";
import { CMDLINE, NODE_PATHS, type NodeLifecycleEvent, type NodePhase } from "./node-protocol.js";

export interface PostOptions {
  attempts?: number;
  timeoutMs?: number;
  backoffMs?: number;
  /** Longest wait between attempts. */
  maxBackoffMs?: number;
}

export type Target = { url: string; headers: Record<string, string>; secret: Record<string, string> };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends lifecycle events to the boot server and the answer's webhook, in order, with retries. */
export class Reporter {
  private readonly targets: { name: string; target: Target }[] = [];
  private readonly secrets = new Set<string>();

  constructor(private readonly log: (line: string) => void) {}

  addSecret(value: string | undefined): void {
    if (value) this.secrets.add(value);
  }

  scrub(text: string): string {
    let out = text;
    // Longest first: a secret that contains another is hidden whole.
    for (const s of [...this.secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join(REDACTED);
    return out;
  }

  add(name: string, target: Target): void {
    for (const v of Object.values(target.secret)) this.addSecret(v);
    this.targets.push({ name, target });
  }

  get server(): Target | undefined {
    return this.targets.find((t) => t.name === "server")?.target;
  }

  /** A newer token for the boot server (a refreshed one, or the answer's): every later post uses it. */
  setServerToken(token: string): void {
    this.addSecret(token);
    const server = this.server;
    if (server) server.secret = { authorization: `Bearer ${token}` };
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

  /**
   * Posts a JSON document (a discovered node's report) to another path on the boot server, with the
   * server's token and the same retries as an event. Never throws; false when it did not get through.
   */
  async postToServer(path: string, what: string, doc: unknown, o: PostOptions = {}): Promise<boolean> {
    const server = this.server;
    if (!server) return false;
    const url = new URL(path, server.url).href;
    return this.post("server", { ...server, url }, JSON.stringify(doc), what, o);
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
export function webhookTarget(report: FoundAnswer["answer"]["report"]): Target | null {
  if (!report?.webhook) return null;
  const secretNames = new Set(report.secretHeaders.map((h) => h.toLowerCase()));
  const headers: Record<string, string> = {};
  const secret: Record<string, string> = {};
  for (const [k, v] of Object.entries(report.headers))
    (secretNames.has(k.toLowerCase()) ? secret : headers)[k] = v;
  return { url: report.webhook, headers, secret };
}

export function serverTarget(
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

/**
 * The answer's secret values: every string the events' redaction hides by its key (passwordHash
 * and the like), found by redacting a copy and comparing, so the one list of secret key names stays
 * in src/apply/events.ts. Values shorter than 4 characters are left: scrubbing them would mangle
 * every line and hide nothing worth hiding.
 */
export function answerSecrets(answer: Answer): string[] {
  const out: string[] = [];
  const walk = (orig: unknown, red: unknown) => {
    if (typeof orig === "string") {
      if (red === REDACTED && orig !== REDACTED && orig.length >= 4) out.push(orig);
    } else if (orig && typeof orig === "object" && red && typeof red === "object") {
      for (const [k, v] of Object.entries(orig)) walk(v, (red as Record<string, unknown>)[k]);
    }
  };
  walk(answer, redact(answer));
  const report = answer.report;
  if (report) {
    const secretNames = new Set(report.secretHeaders.map((h) => h.toLowerCase()));
    for (const [k, v] of Object.entries(report.headers))
      if (secretNames.has(k.toLowerCase()) && v) out.push(v);
  }
  return out;
}
