// events: the one typed stream apply (and undo) reports through. The TUI, the CLI (human lines or
// --events JSON lines), webhooks and the log on disk all subscribe to the same bus; none of them can
// fail the apply: a sink that throws or rejects is reported to the bus's error hook and ignored.
import { appendFile, mkdir } from "node:fs/promises";
import path from "node:path";
import type { Writable } from "node:stream";
import { z } from "zod";
import { InputError } from "../core/errors.js";
import { parseWire } from "./wire.js";

const counts = z.object({ done: z.number().int(), skipped: z.number().int(), failed: z.number().int() });

export const runPhaseSchema = z.enum(["STARTED", "SUCCEEDED", "FAILED"]);
export type RunPhase = z.infer<typeof runPhaseSchema>;
export const stepPhaseSchema = z.enum(["started", "progress", "finished", "skipped", "failed"]);
export type StepPhase = z.infer<typeof stepPhaseSchema>;

/** The event stream's one definition: what --events writes, webhooks POST and the log keeps. */
export const applyEventSchema = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("run"),
    phase: runPhaseSchema,
    runId: z.string(),
    time: z.string(),
    /** "apply" (default) or "undo". */
    operation: z.enum(["apply", "undo"]).optional(),
    planDigest: z.string().optional(),
    actions: z.number().int().optional(),
    dryRun: z.boolean().optional(),
    resumed: z.boolean().optional(),
    durationMs: z.number().optional(),
    counts: counts.optional(),
    error: z.string().optional(),
    remediation: z.string().optional(),
  }),
  z.object({
    type: z.literal("step"),
    phase: stepPhaseSchema,
    id: z.string(),
    summary: z.string(),
    time: z.string(),
    runId: z.string().optional(),
    /** What the step does or did, e.g. "write /etc/modprobe.d/kvm.conf (34 bytes)". */
    detail: z.string().optional(),
    durationMs: z.number().optional(),
    error: z.string().optional(),
    remediation: z.string().optional(),
    dryRun: z.boolean().optional(),
  }),
  z.object({
    type: z.literal("reboot-required"),
    ids: z.array(z.string()),
    time: z.string(),
    runId: z.string().optional(),
  }),
  z.object({
    type: z.literal("confirm-required"),
    deadline: z.string(),
    timeoutSeconds: z.number(),
    ids: z.array(z.string()),
    time: z.string(),
    runId: z.string().optional(),
  }),
  z.object({
    type: z.literal("reverted"),
    reason: z.string(),
    ids: z.array(z.string()),
    time: z.string(),
    runId: z.string().optional(),
  }),
]);

export type ApplyEvent = z.infer<typeof applyEventSchema>;

/** One JSON line of an event stream (--events, the log on disk) read back; InputError when it is not one. */
export function parseEventLine(line: string, where = "event"): ApplyEvent {
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch (e) {
    throw new InputError(`${where}: not JSON (${(e as Error).message})`);
  }
  return parseWire(applyEventSchema, data, where);
}

export type EventSink = (event: ApplyEvent) => void | Promise<void>;

export class EventBus {
  private readonly sinks = new Set<EventSink>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly onSinkError: (error: unknown) => void = () => {}) {}

  subscribe(sink: EventSink): () => void {
    this.sinks.add(sink);
    return () => this.sinks.delete(sink);
  }

  emit(event: ApplyEvent): void {
    for (const sink of this.sinks) {
      try {
        const r = sink(event);
        if (r && typeof (r as Promise<void>).then === "function") {
          const p: Promise<void> = (r as Promise<void>).then(
            () => {},
            (e) => this.onSinkError(e),
          );
          this.pending.add(p);
          void p.finally(() => this.pending.delete(p));
        }
      } catch (e) {
        this.onSinkError(e);
      }
    }
  }

  /** Waits for asynchronous sinks (webhooks, log files) to finish, at most timeoutMs. */
  async drain(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.pending]),
        new Promise((r) => {
          timer = setTimeout(r, Math.max(0, deadline - Date.now()));
        }),
      ]);
      clearTimeout(timer);
    }
  }
}

export const now = () => new Date().toISOString();

const SECRET_KEY = /pass(word|wd|phrase)?|token|secret|api[-_]?key|authorization|credential/i;
export const REDACTED = "[redacted]";

/** A deep copy with every field named like a password, token or secret replaced by "[redacted]". */
export function redact<T>(value: T): T {
  if (Array.isArray(value)) return value.map(redact) as T;
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined ? REDACTED : redact(v);
    }
    return out as T;
  }
  return value;
}

/**
 * One JSON object per line (for --events FILE|-). A stream that fails (a closed pipe: `| head`) is
 * reported once through onError and written no more: a reader going away never stops the apply.
 */
export function jsonLinesSink(stream: Writable, onError: (e: Error) => void = () => {}): EventSink {
  let broken = false;
  stream.on("error", (e) => {
    if (!broken) onError(e);
    broken = true;
  });
  return (event) => {
    if (!broken && !stream.destroyed) stream.write(`${JSON.stringify(event)}\n`);
  };
}

/**
 * Appends events as JSON lines to <dir>/<file> (default apply-events.jsonl), so failures stay on disk
 * after the console is gone. Secrets are redacted. Appends are chained so lines never interleave.
 */
export function fileLogSink(dir = "/var/lib/kvmstrap/log", file = "apply-events.jsonl"): EventSink {
  const target = path.join(dir, file);
  let chain: Promise<void> = mkdir(dir, { recursive: true }).then(() => {});
  return (event) => {
    const line = `${JSON.stringify(redact(event))}\n`;
    chain = chain.then(() => appendFile(target, line, { mode: 0o640 }));
    return chain;
  };
}

export interface WebhookOptions {
  /** Per attempt (default 3000 ms). */
  timeoutMs?: number;
  /** Further attempts after a network error or a 5xx/429 answer (default 2). */
  retries?: number;
  backoffMs?: number;
  /** Where delivery problems (and, with verbose, deliveries) are logged; secrets redacted. */
  log?: (line: string) => void;
  verbose?: boolean;
}

/**
 * POSTs every event as JSON to `url`, in order, with `headers` and `secretHeaders` (e.g.
 * Authorization: sent, but never written to a log). Never throws into the apply: a failed delivery
 * is logged (secret header values and secret-named fields redacted) and dropped after the retries.
 */
export function webhookSink(
  url: string,
  headers: Record<string, string> = {},
  secretHeaders: Record<string, string> = {},
  options: WebhookOptions = {},
): EventSink {
  const { timeoutMs = 3000, retries = 2, backoffMs = 200, verbose = false } = options;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const sent = { "content-type": "application/json", ...headers, ...secretHeaders };
  const shown = { ...headers, ...Object.fromEntries(Object.keys(secretHeaders).map((k) => [k, REDACTED])) };
  const scrub = (text: string) => {
    let out = text;
    for (const v of Object.values(secretHeaders)) if (v) out = out.split(v).join(REDACTED);
    return out;
  };
  const say = (line: string) => {
    try {
      log(scrub(line));
    } catch {
      /* a broken logger must not break the apply either */
    }
  };
  let chain: Promise<void> = Promise.resolve();

  const deliver = async (event: ApplyEvent) => {
    // The same redaction as the event log: a webhook is a log someone else keeps.
    const body = JSON.stringify(redact(event));
    const what = `${event.type}${"phase" in event ? ` ${event.phase}` : ""}`;
    for (let attempt = 0; attempt <= retries; attempt++) {
      let problem: string;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: sent,
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          if (verbose) say(`webhook: POST ${url} ${what} -> ${res.status} headers=${JSON.stringify(shown)}`);
          return;
        }
        problem = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) attempt = retries; // a client error will not heal
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        problem =
          err.name === "TimeoutError" ? `timed out after ${timeoutMs} ms` : (err.cause?.code ?? err.message);
      }
      say(
        `webhook: POST ${url} ${what} failed (attempt ${attempt + 1}/${retries + 1}): ${problem}; ` +
          `headers=${JSON.stringify(shown)} event=${JSON.stringify(redact(event))}`,
      );
      if (attempt < retries) await new Promise((r) => setTimeout(r, backoffMs * (attempt + 1)));
    }
  };

  return (event) => {
    chain = chain.then(() => deliver(event)).catch(() => {});
    return chain;
  };
}

/** One short human line per event, for the CLI's stderr. */
export function formatEvent(e: ApplyEvent): string | null {
  switch (e.type) {
    case "run": {
      const took = e.durationMs !== undefined ? ` in ${(e.durationMs / 1000).toFixed(1)} s` : "";
      const c = !e.counts
        ? ""
        : e.dryRun
          ? ` (${(e.actions ?? 0) - e.counts.skipped} to change, ${e.counts.skipped} already applied)`
          : ` (${e.counts.done} changed, ${e.counts.skipped} unchanged, ${e.counts.failed} failed)`;
      const op = e.operation === "undo" ? "undo" : e.dryRun ? "dry run" : "apply";
      if (e.phase === "STARTED") return `${op} ${e.runId}: started${e.resumed ? " (resumed)" : ""}`;
      if (e.phase === "SUCCEEDED") return `${op} ${e.runId}: succeeded${took}${c}`;
      return `${op} ${e.runId}: FAILED${took}: ${e.error ?? "see above"}${e.remediation ? `\n  fix: ${e.remediation}` : ""}`;
    }
    case "step": {
      if (e.phase === "started" || e.phase === "progress") return null;
      const mark = { finished: "done", skipped: e.dryRun ? "dry " : "ok  ", failed: "FAIL" }[e.phase];
      const tail = e.error ? `: ${e.error}${e.remediation ? `\n  fix: ${e.remediation}` : ""}` : "";
      return `  [${mark}] ${e.id}: ${e.detail ?? e.summary}${tail}`;
    }
    case "reboot-required":
      return `reboot required for: ${e.ids.join(", ")}; after the reboot run "kvmstrap apply --resume"`;
    case "confirm-required":
      return `network changed (${e.ids.join(", ")}): run "kvmstrap confirm" before ${e.deadline} (${e.timeoutSeconds} s) or it is reverted`;
    case "reverted":
      return `reverted ${e.ids.join(", ")}: ${e.reason}`;
  }
}
