// The appliance's side of discovery (kvmstrap.mode=discover): detect this machine, post its report
// with its DMI identity (UUID, serial, asset tag: the fleet knows a node by them first, its MACs
// second) to the boot server, then wait until the server serves the answer: 409 (not approved) and
// 423 (held) mean "not yet", asked again with a growing pause. Hold before destroy: nothing on this
// machine is touched before the operator approved it.
import { readFile } from "node:fs/promises";
import { detectHost } from "../detect/index.js";
import { RootedHostFs } from "../host/fs.js";
import { displayUrl } from "./answer-source.js";
import {
  ANSWER_WAIT_STATUS,
  NODE_PATHS,
  type NodeReportBody,
  TOKEN_REFRESH_HEADER,
} from "./node-protocol.js";
import type { PostOptions, Reporter } from "./node-report.js";

export interface DiscoverOptions {
  /** Takes the report (default: detect this machine and read its DMI identity). */
  take?: () => Promise<NodeReportBody>;
  /** The first pause between answer requests (default 2 s), doubled up to maxPollMs (default 30 s). */
  pollMs?: number;
  maxPollMs?: number;
  /** Give up after this long (default: wait as long as it takes; approval is the operator's). */
  timeoutMs?: number;
  post?: PostOptions;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This machine: its detect report, DMI identity and the MACs of its physical NICs. */
export async function takeReport(): Promise<NodeReportBody> {
  const report = await detectHost({ fs: new RootedHostFs("/") });
  const dmi = async (name: string) => {
    const v = await readFile(`/sys/class/dmi/id/${name}`, "utf8").catch(() => "");
    return v.trim().slice(0, 120) || null;
  };
  return {
    identity: {
      uuid: await dmi("product_uuid"),
      serial: await dmi("product_serial"),
      assetTag: await dmi("chassis_asset_tag"),
      macs: report.nics.filter((n) => !n.virtual && n.mac).map((n) => n.mac as string),
    },
    report,
  };
}

export interface WaitInput {
  reporter: Reporter;
  node: string;
  answerUrl: string;
  token: string | undefined;
  say: (line: string) => void;
  log: (line: string) => void;
  o?: DiscoverOptions;
}

/** A refreshed token as the server sends it (base36 expiry, a dot, base64url): anything else is ignored. */
const TOKEN_SHAPE = /^[0-9a-z]{1,16}\.[A-Za-z0-9_-]{16,128}$/;

/**
 * Posts the report, then waits for the answer to be served. Each "not yet" carries a fresh token
 * (TOKEN_REFRESH_HEADER): the wait may outlast the boot token's lifetime, so the newest one is used
 * for the next request, the reporter's events, and returned for the answer fetch.
 */
export async function waitForApproval(
  w: WaitInput,
): Promise<{ ok: true; token: string | undefined } | { ok: false; why: string }> {
  const o = w.o ?? {};
  let body: NodeReportBody;
  try {
    body = await (o.take ?? takeReport)();
  } catch (e) {
    return { ok: false, why: `discovery: detect failed: ${(e as Error).message}` };
  }
  const posted = await w.reporter.postToServer(NODE_PATHS.report(w.node), "report", body, {
    attempts: 10,
    ...o.post,
  });
  if (!posted) return { ok: false, why: "discovery: the report did not reach the boot server" };
  w.say(
    `discovery: report posted (${body.identity.macs.length} NICs, uuid ${body.identity.uuid ?? "unknown"})`,
  );
  return pollUntilServed(w);
}

/** Asks for the answer until the server serves it (the report already posted). */
export async function pollUntilServed(
  w: WaitInput,
): Promise<{ ok: true; token: string | undefined } | { ok: false; why: string }> {
  const o = w.o ?? {};
  let url: URL;
  try {
    url = new URL(w.answerUrl);
  } catch {
    return { ok: false, why: `discovery: ${w.answerUrl} is not a URL` };
  }
  const shown = displayUrl(url);
  const start = Date.now();
  let pause = o.pollMs ?? 2000;
  let said = "";
  let token = w.token;
  for (;;) {
    let status = 0;
    let error = "";
    try {
      const res = await fetch(url, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        signal: AbortSignal.timeout(15_000),
      });
      status = res.status;
      const text = await res.text().catch(() => "");
      if (res.ok) {
        w.say("discovery: approved, the answer is served");
        return { ok: true, token };
      }
      const fresh = res.headers.get(TOKEN_REFRESH_HEADER);
      if (
        fresh &&
        TOKEN_SHAPE.test(fresh) &&
        (ANSWER_WAIT_STATUS as readonly number[]).includes(res.status)
      ) {
        token = fresh;
        w.reporter.setServerToken(fresh);
      }
      try {
        error = String((JSON.parse(text) as { error?: unknown }).error ?? "");
      } catch {
        error = text.slice(0, 200);
      }
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      error = err.cause?.code ?? err.message;
    }
    const waiting = (ANSWER_WAIT_STATUS as readonly number[]).includes(status);
    // Anything but "not yet", a server error or no answer will not heal by asking again.
    if (status !== 0 && !waiting && status < 500)
      return { ok: false, why: `discovery: ${shown}: HTTP ${status}${error ? `: ${error}` : ""}` };
    const line = waiting ? error || "waiting for approval" : `${shown}: ${status || error}; asking again`;
    if (line !== said) {
      (waiting ? w.say : w.log)(`discovery: ${line}`);
      said = line;
    }
    if (o.timeoutMs !== undefined && Date.now() - start > o.timeoutMs)
      return {
        ok: false,
        why: `discovery: not approved within ${Math.round(o.timeoutMs / 1000)} s (${line})`,
      };
    await sleep(pause);
    pause = Math.min(pause * 2, o.maxPollMs ?? 30_000);
  }
}
