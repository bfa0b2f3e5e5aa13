// A discovered node that waits for its approval longer than its token lives: `kvmstrap serve
// --fleet --token-ttl 3` as the real CLI, the agent (runAgent) in discovery mode polling its answer.
// Each "not yet" (409) to a valid token carries a fresh one (x-kvmstrap-token); the agent swaps to
// it, so when the operator approves it after several lifetimes of its boot token it still fetches
// its answer and its reports still reach the intake. An expired token gets 401 and no new token.
// No token ever reaches the agent's lines.
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../../../src/app/node-agent.js";
import { TOKEN_REFRESH_HEADER } from "../../../src/app/node-protocol.js";
import { detectHost } from "../../../src/detect/index.js";
import type { HostReport } from "../../../src/detect/types.js";
import { RootedHostFs } from "../../../src/host/fs.js";
import { freeTcp } from "../../helpers/free-port.js";
import {
  projectRoot,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "../../pxe/serve/helpers.js";

const TTL_S = 3;
const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/app/fleet-serve.js"));
const tmp = tempDir("token-refresh");
const state = path.join(tmp.dir, "state");
const fleetDir = path.join(tmp.dir, "fleet");
let child: ChildProcess | undefined;
let base = "";
let out = "";
let adminToken = "";
let report: HostReport;

const MAC = "52:54:00:f2:00:01";
const UUID = "4c4c4544-0031-3510-8052-b4c04f4a3201";
/** What a node token looks like (base36 expiry, a dot, an HMAC-SHA256 in base64url). */
const TOKEN_LIKE = /[0-9a-z]+\.[A-Za-z0-9_-]{43}/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A token's expiry (seconds since the epoch), as the server encodes it. */
const expiryOf = (token: string) => Number.parseInt(token.split(".")[0] ?? "", 36);

const answer = (token: string) =>
  fetch(`${base}/v1/nodes/${MAC}/answer`, { headers: { authorization: `Bearer ${token}` } });
const admin = async (method: string, url: string, body?: unknown) => {
  const r = await fetch(`${base}${url}`, {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body ? { "content-type": "application/json" } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  expect(r.status, `${method} ${url}`).toBe(200);
  return r.json();
};

beforeAll(async () => {
  if (!built || !sharedHostsAvailable) return;
  makeNetboot(path.join(tmp.dir, "netboot"));
  mkdirSync(path.join(tmp.dir, "ipxe"));
  cpSync(
    path.join(projectRoot, "test/fleet/cases/held-missing-nic/fleet/site.yaml"),
    path.join(fleetDir, "site.yaml"),
  );
  mkdirSync(path.join(fleetDir, "racks"));
  writeFileSync(path.join(fleetDir, "racks", "r1.yaml"), "host:\n  timezone: Europe/Berlin\n");
  report = await detectHost({
    fs: new RootedHostFs(sharedHostRoot("amd-ryzen-1600-desktop")),
    probe: { mode: "never" },
    pciIds: null,
  });
  const port = await freeTcp();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--fleet", fleetDir, "--rack", "r1", "--token-ttl", String(TTL_S), "--json"],
  ]);
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const until = Date.now() + 240_000; // PGlite's first open took 53 s here under load 10
  while (!out.includes('"listening"')) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`serve did not start: ${out}`);
    await sleep(100);
  }
  adminToken = readFileSync(path.join(state, "admin.token"), "utf8").trim();
}, 300_000);
afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  tmp.remove();
});

describe.skipIf(!built || !sharedHostsAvailable)(
  `a discovered node keeps a valid token while it waits for approval${built ? "" : " (skipped: run npm run build)"}${sharedHostsAvailable ? "" : ` (${SKIP_REASON})`}`,
  () => {
    it(`waits past several token lifetimes (--token-ttl ${TTL_S}), is approved, fetches its answer and reports with the refreshed token`, async () => {
      const script = await (await fetch(`${base}/boot/${MAC}.ipxe?uuid=${UUID}&serial=SER-T&asset=`)).text();
      const cmdline = /kernel \S+ (.*)$/m.exec(script)?.[1] ?? "";
      const bootToken = /kvmstrap\.token=(\S+)/.exec(cmdline)?.[1] ?? "";
      expect(cmdline).toContain("kvmstrap.mode=discover");
      expect(bootToken).toMatch(TOKEN_LIKE);

      const lines: string[] = [];
      const agent = runAgent({
        cmdline,
        say: (l) => lines.push(l),
        log: (l) => lines.push(l),
        installer: {
          unavailable: async () => "no installer in this test",
          run: async () => ({ ok: false, detail: "" }),
        },
        power: { sync: [], reboot: [], poweroff: [] },
        answerFile: path.join(tmp.dir, "agent-answer.yaml"),
        discover: {
          pollMs: 300,
          maxPollMs: 600,
          timeoutMs: 120_000,
          take: async () => ({
            identity: { uuid: UUID, serial: "SER-T", assetTag: null, macs: [MAC] },
            report,
          }),
        },
      });
      const until = Date.now() + 60_000;
      while (!lines.some((l) => /waiting for approval/.test(l)) && Date.now() < until) await sleep(100);
      expect(lines.join("\n")).toMatch(/waiting for approval/);

      // Past three lifetimes of the boot token: it is refused now, and gets no new token.
      await sleep((3 * TTL_S + 1) * 1000);
      expect(expiryOf(bootToken) * 1000).toBeLessThan(Date.now());
      const expired = await answer(bootToken);
      expect(expired.status).toBe(401);
      expect(await expired.json()).toEqual({ error: "token expired" });
      expect(expired.headers.get(TOKEN_REFRESH_HEADER)).toBeNull();

      // The node is still waiting (its agent polls with the refreshed token); the operator approves it.
      const { nodes } = (await admin("GET", "/v1/fleet/nodes")) as {
        nodes: { id: string; macs: string[]; approved: boolean }[];
      };
      const node = nodes.find((n) => n.macs.includes(MAC));
      expect(node).toMatchObject({ approved: false });
      await admin("POST", `/v1/fleet/nodes/${node?.id}/approve`, { reason: "late approval" });

      const outcome = await agent;
      expect(outcome.answer?.text).toMatch(/enp3s0/);
      expect(readFileSync(path.join(tmp.dir, "agent-answer.yaml"), "utf8")).toMatch(/enp3s0/);
      expect(outcome.phase).toBe("failed"); // the test's installer refuses: nothing is installed here
      expect(lines.join("\n")).toMatch(/discovery: approved, the answer is served/);

      // Its reports after the answer reached the intake (the boot token would have been refused):
      // the server's table has the agent's answer-fetched and its failure.
      const status = (await (await fetch(`${base}/v1/status`)).json()) as {
        nodes: { mac: string; state: string; timeline: { state: string; detail?: string }[] }[];
      };
      const mine = status.nodes.find((n) => n.mac === MAC);
      expect(mine?.state).toBe("failed");
      expect(JSON.stringify(mine?.timeline)).toContain("install: no installer in this test");

      // No token in what the agent said or logged, nor in serve's output.
      for (const l of lines) expect(l).not.toMatch(TOKEN_LIKE);
      expect(out).not.toMatch(TOKEN_LIKE);
    }, 180_000);

    it("a 409 to a valid token carries a fresh one the server accepts, living longer than the one asked with", async () => {
      // A second node, reported and waiting (the first is approved by now).
      const mac2 = "52:54:00:f2:00:02";
      const s2 = await (await fetch(`${base}/boot/${mac2}.ipxe?uuid=&serial=SER-U&asset=`)).text();
      const t2 = /kvmstrap\.token=(\S+)/.exec(s2)?.[1] ?? "";
      const posted = await fetch(`${base}/v1/nodes/${mac2}/report`, {
        method: "POST",
        headers: { authorization: `Bearer ${t2}`, "content-type": "application/json" },
        body: JSON.stringify({
          identity: { uuid: null, serial: "SER-U", assetTag: null, macs: [mac2] },
          report,
        }),
      });
      expect(posted.status).toBe(200);
      await sleep(1100); // a later second: the fresh token's expiry is later than t2's
      const r = await fetch(`${base}/v1/nodes/${mac2}/answer`, {
        headers: { authorization: `Bearer ${t2}` },
      });
      expect(r.status).toBe(409);
      const fresh = r.headers.get(TOKEN_REFRESH_HEADER) ?? "";
      expect(fresh).toMatch(TOKEN_LIKE);
      expect(expiryOf(fresh)).toBeGreaterThan(expiryOf(t2));
      const again = await fetch(`${base}/v1/nodes/${mac2}/answer`, {
        headers: { authorization: `Bearer ${fresh}` },
      });
      expect(again.status).toBe(409);
      // Bound to its node: another node's route refuses it.
      expect((await answer(fresh)).status).toBe(401);
    }, 60_000);
  },
);
