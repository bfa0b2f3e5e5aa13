// Where an unattended appliance finds its answer file: the kernel command line's kvmstrap.answer=
// (an http(s) URL, a file:///path, or label:FSLABEL[/path] for a labelled partition or a second
// medium), else an answer embedded in the image. Every failure names the source and the reason, and
// the text is held to the answer loader (schema, size, YAML) before anyone acts on it.
import { createHash } from "node:crypto";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { AnswerError, formatIssue, MAX_ANSWER_BYTES, parseAnswerSource } from "../answer/load.js";
import type { Answer } from "../answer/schema.js";
import { REDACTED } from "../apply/events.js";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { ANSWER_WAIT_STATUS, CMDLINE } from "./node-protocol.js";
import {
  formatFingerprint,
  type HttpGot,
  normalizeFingerprint,
  PinMismatchError,
  pinnedGet,
} from "./pinned-https.js";

/** Where the image build puts an embedded answer: the live medium's kvmstrap/answer.yaml. */
export const EMBEDDED_ANSWER = "/run/live/medium/kvmstrap/answer.yaml";
/** The file label: sources read when no path is given. */
export const LABEL_DEFAULT_PATH = "answer.yaml";

export type AnswerLocation =
  | { kind: "url"; url: URL }
  | { kind: "file"; path: string }
  | { kind: "label"; label: string; path: string }
  | { kind: "embedded"; path: string };

export interface FoundAnswer {
  /** Where it came from, fit for logs and events (no token, no secret query values). */
  source: string;
  text: string;
  sha256: string;
  answer: Answer;
}

export interface HttpOptions {
  /** Per attempt (default 15 s). */
  timeoutMs?: number;
  /** Attempts in all (default 5): network errors, 5xx and 429 are retried, other answers are final. */
  attempts?: number;
  /** The first wait between attempts, doubled each time (default 1 s). */
  backoffMs?: number;
  /** Sent as Authorization: Bearer when the URL is on this origin (the boot server's). */
  bearer?: { origin: string; token: string } | undefined;
  /** Told about each failed attempt (already redacted). */
  onRetry?: (line: string) => void;
  /**
   * The https server's certificate SHA-256 (64 hex digits, normalizeFingerprint's form): it must
   * match, and no CA is asked. Without it, the usual CA checks.
   */
  pin?: string | undefined;
}

export interface FindOptions {
  http?: HttpOptions;
  /** Runs mount and umount for label: sources. */
  runner?: CommandRunner;
  /** Where labelled filesystems are looked up (default /dev/disk/by-label). */
  byLabelDir?: string;
  /** The embedded answer's path (default EMBEDDED_ANSWER); null to not look. */
  embedded?: string | null;
}

// A filesystem label as udev lists it: no slash (the path separator), no whitespace, at most the
// longest label of the filesystems that carry one (ext4 16, vfat 11, iso9660 32).
const LABEL = /^[A-Za-z0-9._+-]{1,32}$/;

/** Parses kvmstrap.answer='s value; InputError naming the parameter when it is none of the forms. */
export function parseAnswerLocation(spec: string): AnswerLocation {
  const where = `${CMDLINE.answer}=${displaySpec(spec)}`;
  if (/^https?:\/\//i.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      throw new InputError(`${where}: not a valid URL`);
    }
    return { kind: "url", url };
  }
  if (spec.startsWith("file://")) {
    let file: string;
    try {
      file = new URL(spec).pathname;
    } catch {
      throw new InputError(`${where}: not a valid file:// URL`);
    }
    if (!spec.startsWith("file:///")) throw new InputError(`${where}: write file:///absolute/path`);
    return { kind: "file", path: decodeURIComponent(file) };
  }
  if (spec.startsWith("label:")) {
    const rest = spec.slice("label:".length);
    const slash = rest.indexOf("/");
    const label = slash < 0 ? rest : rest.slice(0, slash);
    const rel = slash < 0 ? LABEL_DEFAULT_PATH : rest.slice(slash + 1);
    if (!LABEL.test(label)) {
      throw new InputError(`${where}: "${label}" is not a filesystem label (letters, digits, . _ + -)`);
    }
    const clean = path.posix.normalize(`/${rel}`);
    if (rel === "" || clean === "/" || rel.split("/").includes("..")) {
      throw new InputError(`${where}: "${rel}" is not a file path inside the filesystem`);
    }
    return { kind: "label", label, path: clean.slice(1) };
  }
  throw new InputError(
    `${where}: not an answer source (use http(s)://URL, file:///path or label:FSLABEL[/path])`,
  );
}

const SECRET_PARAM = /pass|token|secret|key|auth|sig|cred/i;

/** A URL fit for logs: no user info, and secret-looking query values redacted. */
export function displayUrl(url: URL): string {
  const u = new URL(url.href);
  if (u.username || u.password) {
    u.username = "";
    u.password = "";
  }
  for (const k of [...u.searchParams.keys()]) if (SECRET_PARAM.test(k)) u.searchParams.set(k, REDACTED);
  return u.href.replaceAll(encodeURIComponent(REDACTED), REDACTED);
}

function displaySpec(spec: string): string {
  try {
    return /^https?:\/\//i.test(spec) ? displayUrl(new URL(spec)) : spec;
  } catch {
    return spec.replace(/\/\/[^/@]*@/, "//");
  }
}

export function describeLocation(l: AnswerLocation): string {
  switch (l.kind) {
    case "url":
      return displayUrl(l.url);
    case "file":
      return `file://${l.path}`;
    case "label":
      return `label:${l.label}/${l.path}`;
    case "embedded":
      return `the image (${l.path})`;
  }
}

/** Reads at most MAX_ANSWER_BYTES of a regular file; InputError naming it otherwise. */
async function readBounded(file: string, what: string): Promise<Buffer> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new InputError(`${what}: not a regular file`);
    if (st.size > MAX_ANSWER_BYTES) throw new InputError(`${what}: ${tooBig(st.size)}`);
    handle = await open(file, "r");
    const buf = Buffer.alloc(MAX_ANSWER_BYTES + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_ANSWER_BYTES) throw new InputError(`${what}: ${tooBig(bytesRead)}`);
    return buf.subarray(0, bytesRead);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`${what}: ${code === "ENOENT" ? "no such file" : `cannot read (${code ?? e})`}`);
  } finally {
    await handle?.close();
  }
}

const tooBig = (n: number) =>
  `${n > MAX_ANSWER_BYTES ? `more than ${MAX_ANSWER_BYTES}` : n} bytes is too large for an answer file (the limit is ${MAX_ANSWER_BYTES})`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Certificate problems do not heal with a retry (error codes of OpenSSL and Node's TLS).
const CERT_ERROR = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/;

async function fetchGet(url: URL, headers: Record<string, string>, signal: AbortSignal): Promise<HttpGot> {
  const res = await fetch(url, { headers, redirect: "error", signal });
  const reader = res.body?.getReader();
  const body = (async function* () {
    if (!reader) return;
    for (let r = await reader.read(); !r.done; r = await reader.read()) yield r.value;
  })();
  return {
    status: res.status,
    statusText: res.statusText,
    declared: Number(res.headers.get("content-length") ?? "0"),
    body,
    cancel: () => void (reader ?? res.body)?.cancel().catch(() => {}),
  };
}

/**
 * The boot server's "not yet" (409 waiting, 423 held) for an answer: a discovered node goes back to
 * waiting. Its "approved" can be overtaken before the fetch: a rollout started in between holds the
 * node until its wave takes it.
 */
export class AnswerNotServedYet extends InputError {
  override name = "AnswerNotServedYet";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** GETs the answer with a per-attempt timeout, a size bound and retries with backoff. */
export async function fetchAnswerUrl(url: URL, o: HttpOptions = {}): Promise<Buffer> {
  const { timeoutMs = 15_000, attempts = 5, backoffMs = 1000 } = o;
  const shown = displayUrl(url);
  if (o.pin && url.protocol !== "https:") {
    throw new InputError(`answer from ${shown}: ${CMDLINE.answerFingerprint}= applies only to https:// URLs`);
  }
  const headers: Record<string, string> = { accept: "application/yaml, text/plain, */*" };
  if (o.bearer && url.origin === o.bearer.origin) headers.authorization = `Bearer ${o.bearer.token}`;
  let last = "";
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let final = false;
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      const res = o.pin ? await pinnedGet(url, headers, o.pin, signal) : await fetchGet(url, headers, signal);
      if (res.status >= 200 && res.status < 300) return await readBody(res, shown);
      res.cancel();
      last = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
      if ((ANSWER_WAIT_STATUS as readonly number[]).includes(res.status))
        throw new AnswerNotServedYet(`answer from ${shown}: ${last}`, res.status);
      final = res.status < 500 && res.status !== 429;
    } catch (e) {
      if (e instanceof InputError) throw e;
      if (e instanceof PinMismatchError) {
        throw new InputError(
          `answer from ${shown}: the server's certificate has SHA-256 fingerprint ${e.actual}, not the ` +
            `${CMDLINE.answerFingerprint}=${e.pinned} the command line pinned; nothing was sent to it`,
        );
      }
      const err = e as Error & { code?: string; cause?: { code?: string; message?: string } };
      const code = err.cause?.code ?? err.code;
      last = signal.aborted
        ? `no answer within ${timeoutMs} ms`
        : (code ?? err.cause?.message ?? err.message);
      if (code && CERT_ERROR.test(code)) {
        final = true;
        last += o.pin
          ? ""
          : ` (the certificate is not trusted; a self-signed one can be pinned with ${CMDLINE.answerFingerprint}=sha256:...)`;
      }
    }
    if (final || attempt === attempts) break;
    const wait = backoffMs * 2 ** (attempt - 1);
    o.onRetry?.(`answer from ${shown}: ${last} (attempt ${attempt}/${attempts}; again in ${wait} ms)`);
    await sleep(wait);
  }
  throw new InputError(`answer from ${shown}: ${last}`);
}

async function readBody(res: HttpGot, shown: string): Promise<Buffer> {
  if (res.declared > MAX_ANSWER_BYTES) {
    res.cancel();
    throw new InputError(`answer from ${shown}: ${tooBig(res.declared)}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      res.cancel();
      throw new InputError(`answer from ${shown}: ${tooBig(size)}`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/**
 * The block device of the filesystem labelled `label`: udev's by-label link, else blkid's answer
 * (udev may not have settled yet, or may not run at all: a container, an early boot).
 */
async function deviceByLabel(
  label: string,
  runner: CommandRunner,
  byLabelDir: string,
): Promise<string | null> {
  const link = path.join(byLabelDir, label);
  if (await stat(link).catch(() => null)) return link;
  const r = await runner.run("blkid", ["-L", label], { timeoutMs: 30_000 });
  const dev = r.stdout.trim().split("\n")[0];
  return r.exitCode === 0 && dev?.startsWith("/dev/") ? dev : null;
}

/**
 * Mounts the filesystem labelled `label` read-only in a temporary directory, reads the file, and
 * unmounts, whatever happened. The device is found by udev's by-label link, so a second USB stick or
 * a partition of the boot disk both work.
 */
export async function readFromLabel(
  label: string,
  rel: string,
  o: { runner?: CommandRunner; byLabelDir?: string } = {},
): Promise<Buffer> {
  const what = `answer from label:${label}/${rel}`;
  const runner = o.runner ?? new ExecaRunner();
  const device = await deviceByLabel(label, runner, o.byLabelDir ?? "/dev/disk/by-label");
  if (!device) throw new InputError(`${what}: no filesystem labelled "${label}"`);
  const dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-answer-"));
  try {
    const m = await runner.run("mount", ["-o", "ro,nosuid,nodev,noexec", device, dir], { timeoutMs: 30_000 });
    if (m.exitCode !== 0) {
      throw new InputError(
        `${what}: cannot mount ${device}: ${(m.stderr || m.stdout).trim() || "mount failed"}`,
      );
    }
    try {
      return await readBounded(path.join(dir, rel), what);
    } finally {
      await runner.run("umount", [dir], { timeoutMs: 30_000 });
    }
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}

/** The answer at one location, fetched, checked against `sha256` when given, and schema-checked. */
export async function readAnswerAt(
  location: AnswerLocation,
  o: FindOptions & { sha256?: string | undefined } = {},
): Promise<FoundAnswer> {
  const source = describeLocation(location);
  let bytes: Buffer;
  switch (location.kind) {
    case "url":
      bytes = await fetchAnswerUrl(location.url, o.http);
      break;
    case "file":
    case "embedded":
      bytes = await readBounded(location.path, `answer from ${source}`);
      break;
    case "label":
      bytes = await readFromLabel(location.label, location.path, o);
      break;
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (o.sha256 && o.sha256.toLowerCase() !== sha256) {
    throw new InputError(
      `answer from ${source}: sha256 ${sha256} is not the ${CMDLINE.answerSha256}=${o.sha256.toLowerCase()} the command line asked for`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new InputError(`answer from ${source}: binary content (not UTF-8 text), not a YAML answer file`);
  }
  try {
    return { source, text, sha256, answer: parseAnswerSource(text, source).answer };
  } catch (e) {
    if (e instanceof AnswerError) {
      throw new InputError(
        `answer from ${source} is not a valid answer file:\n${e.issues.map(formatIssue).join("\n")}`,
      );
    }
    throw e;
  }
}

/**
 * The answer this boot was given: kvmstrap.answer= when set (a failure there is final: the operator
 * named that source), else the embedded answer when the image carries one, else null.
 */
export async function findAnswer(
  params: Map<string, string>,
  o: FindOptions = {},
): Promise<FoundAnswer | null> {
  const spec = params.get(CMDLINE.answer);
  const sha256 = params.get(CMDLINE.answerSha256) || undefined;
  if (sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new InputError(`${CMDLINE.answerSha256}=${sha256}: not a sha256 (64 hex digits)`);
  }
  const pinSpec = params.get(CMDLINE.answerFingerprint);
  let pin: string | undefined;
  if (pinSpec !== undefined) {
    pin = normalizeFingerprint(pinSpec) ?? undefined;
    if (!pin) {
      throw new InputError(
        `${CMDLINE.answerFingerprint}=${pinSpec}: not a SHA-256 certificate fingerprint (64 hex digits, colons and a sha256: prefix optional)`,
      );
    }
    if (!spec || !/^https:\/\//i.test(spec)) {
      throw new InputError(
        `${CMDLINE.answerFingerprint}=sha256:${formatFingerprint(pin)} pins an https server's certificate, but ${CMDLINE.answer}= is ${spec ? "not an https:// URL" : "not set"}`,
      );
    }
  }
  if (spec) return readAnswerAt(parseAnswerLocation(spec), { ...o, http: { ...o.http, pin }, sha256 });
  const embedded = o.embedded === undefined ? EMBEDDED_ANSWER : o.embedded;
  if (embedded && (await stat(embedded).catch(() => null))) {
    return readAnswerAt({ kind: "embedded", path: embedded }, { ...o, sha256 });
  }
  return null;
}
