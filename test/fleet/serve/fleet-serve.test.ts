// `kvmstrap serve --fleet DIR --rack r1` as the real CLI on loopback, its fleet in an embedded PGlite
// store in a temp dir: an unknown node gets the discovery script, posts its report and waits (409)
// until `kvmstrap fleet approve`; its answer is then merged from the fleet dir; a node whose answer
// fails its own report is held with the reason (423); a NIC swap (same DMI UUID, new MAC) keeps the
// node; the agent (runAgent) in discovery mode waits for the approval; kill -9 and a restart keep
// the approvals and timelines; the CLI's nodes/show/approve/hold/rearm in --json and text; the
// routes refuse a missing token.
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../../../src/app/node-agent.js";
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

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/app/fleet-serve.js"));
const tmp = tempDir("fleet");
const state = path.join(tmp.dir, "state");
const fleetDir = path.join(tmp.dir, "fleet");
const tokenFile = path.join(state, "admin.token");
let child: ChildProcess | undefined;
let port = 0;
let base = "";
let out = "";
let report: HostReport;

const MAC_A = "52:54:00:f1:00:01";
const MAC_A2 = "52:54:00:f1:00:99"; // node a after its NIC was swapped
const MAC_B = "52:54:00:f1:00:02";
const MAC_C = "52:54:00:f1:00:03";
const UUID_A = "4c4c4544-0031-3510-8052-b4c04f4a3132";
const UUID_B = "4c4c4544-0031-3510-8052-b4c04f4a3133";
const UUID_C = "4c4c4544-0031-3510-8052-b4c04f4a3134";

async function start(): Promise<void> {
  out = "";
  child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--fleet", fleetDir, "--rack", "r1", "--json"],
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
    await new Promise((r) => setTimeout(r, 100));
  }
}

const cli = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [bin, "fleet", ...args, "--server", base, "--token-file", tokenFile], {
    reject: false,
    timeout: 30_000,
    env: { NO_COLOR: "1", ...env },
  });
const json = async (args: string[]) => {
  const r = await cli([...args, "--json"]);
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
};

/** The node's discovery script, and the command line and token iPXE would boot it with. */
async function boot(mac: string, uuid: string, serial: string) {
  const res = await fetch(
    `${base}/boot/${mac}.ipxe?uuid=${uuid}&serial=${encodeURIComponent(serial)}&asset=`,
  );
  const script = await res.text();
  const cmdline = /kernel \S+ (.*)$/m.exec(script)?.[1] ?? "";
  const token = /kvmstrap\.token=(\S+)/.exec(cmdline)?.[1] ?? "";
  return { status: res.status, script, cmdline, token };
}

const post = (url: string, token: string, body: unknown) =>
  fetch(url, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
const answer = (mac: string, token: string) =>
  fetch(`${base}/v1/nodes/${mac}/answer`, { headers: { authorization: `Bearer ${token}` } });

/** The same machine's report with enp3s0 gone (its answer's bridge uplink then matches nothing). */
const withoutEnp3s0 = (r: HostReport): HostReport => ({
  ...r,
  nics: r.nics.map((n) => (n.name === "enp3s0" ? { ...n, name: "enp9s9" } : n)),
});

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
  port = await freeTcp();
  base = `http://127.0.0.1:${port}`;
  await start();
}, 300_000);
afterAll(() => {
  if (child && child.exitCode === null) child.kill("SIGKILL");
  tmp.remove();
});

describe.skipIf(!built || !sharedHostsAvailable)(
  `serve --fleet: discovery, approval, answers, the fleet CLI${built ? "" : " (skipped: run npm run build)"}${sharedHostsAvailable ? "" : ` (${SKIP_REASON})`}`,
  () => {
    let idA = "";
    let tokenA = "";

    it("an unknown node boots in discovery mode, reports, and waits for approval (409)", async () => {
      const b = await boot(MAC_A, UUID_A, "SER-A");
      expect(b.status).toBe(200);
      expect(b.cmdline).toContain("kvmstrap.mode=discover");
      expect(b.cmdline).toContain(`kvmstrap.answer=${base}/v1/nodes/${encodeURIComponent(MAC_A)}/answer`);
      tokenA = b.token;
      const identity = { uuid: UUID_A, serial: "SER-A", assetTag: null, macs: [MAC_A] };
      const res = await post(`${base}/v1/nodes/${MAC_A}/report`, tokenA, { identity, report });
      expect(res.status).toBe(200);
      const { node } = (await res.json()) as { node: { id: string; approved: boolean } };
      expect(node.approved).toBe(false);
      idA = node.id;
      const a = await answer(MAC_A, tokenA);
      expect(a.status).toBe(409);
      expect(((await a.json()) as { error: string }).error).toMatch(/waiting for approval/);
      const { nodes } = await json(["nodes"]);
      expect(nodes).toHaveLength(1);
      expect(nodes[0]).toMatchObject({ id: idA, rack: "r1", uuid: UUID_A, serial: "SER-A", approved: false });
    });

    it("the routes refuse a request without the admin token (401), the CLI a wrong token (exit 2)", async () => {
      const res = await fetch(`${base}/v1/fleet/nodes`);
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: "admin token required" });
      const bad = path.join(tmp.dir, "bad.token");
      writeFileSync(bad, "not-the-token-not-the-token-not-the-token\n");
      const r = await execa(
        process.execPath,
        [bin, "fleet", "nodes", "--server", base, "--token-file", bad],
        {
          reject: false,
        },
      );
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(/admin token was refused/);
    });

    it("approve: the node's answer is served, merged from the fleet dir (site and rack layers)", async () => {
      const r = await cli(["approve", idA]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`node ${idA}.* approved`));
      const a = await answer(MAC_A, tokenA);
      expect(a.status).toBe(200);
      const text = await a.text();
      expect(text).toMatch(/uplink:[\s\S]*enp3s0/);
      expect(text).toMatch(/Europe\/Berlin/);
      expect(text).toContain(`webhook: ${base}/v1/nodes/${encodeURIComponent(MAC_A)}/events`);
    });

    it("a node whose answer fails its own report is held with the reason (423), never served", async () => {
      const b = await boot(MAC_B, UUID_B, "SER-B");
      const identity = { uuid: UUID_B, serial: "SER-B", assetTag: null, macs: [MAC_B] };
      const res = await post(`${base}/v1/nodes/${MAC_B}/report`, b.token, {
        identity,
        report: withoutEnp3s0(report),
      });
      const { node } = (await res.json()) as { node: { id: string } };
      expect((await cli(["approve", MAC_B])).exitCode).toBe(0);
      const a = await answer(MAC_B, b.token);
      expect(a.status).toBe(423);
      expect(((await a.json()) as { error: string }).error).toMatch(/no NIC matches/);
      const shown = await json(["show", node.id]);
      expect(shown).toMatchObject({ held: true, answer: "held", approved: true });
      expect(shown.holds[0]).toMatchObject({ source: "answer" });
      expect(shown.holds[0].reason).toMatch(/network\.bridges\[0\]\.uplink: no NIC matches/);
      expect(shown.report.nics.length).toBeGreaterThan(0);
    });

    it("a NIC swap (same DMI UUID, a new MAC) keeps the node", async () => {
      await boot(MAC_A2, UUID_A, "SER-A");
      const shown = await json(["show", MAC_A2]);
      expect(shown.id).toBe(idA);
      expect(shown.macs).toContain(MAC_A2);
      expect(shown.approved).toBe(true);
    });

    it("fleet hold and rearm, in text and JSON", async () => {
      const h = await cli(["hold", idA, "--reason", "disk burn-in first"]);
      expect(h.exitCode, h.stderr).toBe(0);
      expect(h.stdout).toContain("held: disk burn-in first");
      const table = await cli(["nodes"]);
      expect(table.stdout).toMatch(/^ID +NAME +RACK +MAC +STATE/);
      expect(table.stdout).toContain("disk burn-in first");
      for (const line of table.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
      expect((await answer(MAC_A, tokenA)).status).toBe(423);
      const r = await json(["rearm", idA]);
      expect(r).toMatchObject({ id: idA, held: false, holds: [] });
      expect((await answer(MAC_A, tokenA)).status).toBe(200);
      const bad = await cli(["show", "99999"]);
      expect(bad.exitCode).toBe(2);
      expect(bad.stderr).toMatch(/no such node: 99999/);
      const usage = await cli(["hold", idA]);
      expect(usage.exitCode).toBe(2);
      expect(usage.stderr).toMatch(/--reason/);
    });

    it("the agent in discovery mode reports, waits, and goes on once the operator approves", async () => {
      const b = await boot(MAC_C, UUID_C, "SER-C");
      const lines: string[] = [];
      let approved = false;
      const agent = runAgent({
        cmdline: b.cmdline,
        say: (l) => lines.push(l),
        log: (l) => lines.push(l),
        installer: {
          unavailable: async () => "no installer in this test",
          run: async () => ({ ok: false, detail: "" }),
        },
        power: { sync: [], reboot: [], poweroff: [] },
        answerFile: path.join(tmp.dir, "agent-answer.yaml"),
        discover: {
          pollMs: 200,
          maxPollMs: 500,
          timeoutMs: 60_000,
          take: async () => ({
            identity: { uuid: UUID_C, serial: "SER-C", assetTag: null, macs: [MAC_C] },
            report,
          }),
        },
      });
      // Approved only once the node has reported and is waiting.
      const until = Date.now() + 30_000;
      while (!lines.some((l) => /waiting for approval/.test(l)) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 100));
      expect(lines.join("\n")).toMatch(/waiting for approval/);
      const nodes = (await json(["nodes"])).nodes as { id: string; macs: string[] }[];
      const c = nodes.find((n) => n.macs.includes(MAC_C));
      expect(c).toBeDefined();
      approved = (await cli(["approve", c?.id ?? "?"])).exitCode === 0;
      const outcome = await agent;
      expect(approved).toBe(true);
      expect(outcome.answer?.text).toMatch(/enp3s0/);
      expect(readFileSync(path.join(tmp.dir, "agent-answer.yaml"), "utf8")).toMatch(/enp3s0/);
      expect(outcome.phase).toBe("failed"); // the test's installer refuses: nothing is installed here
    }, 60_000);

    it("a rollout on the real serve: started by the CLI, its canary node without power settings fails, the canary halts, abort ends it", async () => {
      const rollout = (args: string[]) =>
        execa(
          process.execPath,
          [bin, "fleet", "rollout", ...args, "--server", base, "--token-file", tokenFile],
          {
            reject: false,
            timeout: 30_000,
            env: { NO_COLOR: "1" },
          },
        );
      const started = await rollout(["start", "--canary", "1", "--wave", "2", "--node", idA, "--json"]);
      expect(started.exitCode, started.stderr).toBe(0);
      const id = String(JSON.parse(started.stdout).id);
      // The runner powers the canary on through its power port; node a has no power settings, so
      // that fails, and one failure in the canary halts it.
      let view: { state: string; nodes: { id: unknown; state: string; reason: string | null }[] } = {
        state: "",
        nodes: [],
      };
      for (let i = 0; i < 150 && view.state !== "canary-halted"; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const st = await rollout(["status", id, "--json"]);
        expect(st.exitCode, st.stderr).toBe(0);
        view = JSON.parse(st.stdout);
      }
      expect(view.state).toBe("canary-halted");
      expect(view.nodes.find((n) => String(n.id) === idA)).toMatchObject({ state: "failed" });
      expect(view.nodes.find((n) => String(n.id) === idA)?.reason).toMatch(/power/);
      // In an active rollout, approval is not enough: a node that failed its wave gets no answer
      // until it is re-armed (409 with the reason), though it is approved and not held.
      const gated = await answer(MAC_A, tokenA);
      expect(gated.status).toBe(409);
      expect(((await gated.json()) as { error: string }).error).toMatch(/failed in rollout .*re-arm/);
      // Resume is refused until the failed node is re-armed or held (exit 2, the server's reason).
      const resume = await rollout(["resume", id]);
      expect(resume.exitCode).toBe(2);
      const abort = await rollout(["abort", id, "--json"]);
      expect(abort.exitCode, abort.stderr).toBe(0);
      expect(JSON.parse(abort.stdout).state).toBe("aborted");
      const text = await rollout(["status", id]);
      expect(text.stdout).toMatch(/aborted/i);
      expect((await answer(MAC_A, tokenA)).status).toBe(200); // no active rollout: approval is enough again
      for (const line of text.stdout.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    }, 120_000);

    it("kill -9 and a restart keep approvals, holds and every acknowledged event on the timeline", async () => {
      const ev = await post(`${base}/v1/nodes/${MAC_A}/events`, tokenA, {
        type: "node",
        phase: "installing",
        time: new Date().toISOString(),
        detail: "acknowledged before the kill",
      });
      expect(ev.status).toBe(204);
      child?.kill("SIGKILL");
      await new Promise((r) => child?.once("exit", r));
      await start();
      const a = await json(["show", idA]);
      expect(a.approved).toBe(true);
      expect(a.timeline.map((t: { detail: string }) => t.detail)).toContain("acknowledged before the kill");
      const states = a.timeline.map((t: { state: string }) => t.state);
      expect(states).toContain("script");
      expect(states).toContain("answer-fetched");
      const b = await json(["show", MAC_B]);
      expect(b.held).toBe(true);
      const text = await cli(["show", idA]);
      expect(text.stdout).toMatch(/timeline:/);
      expect(text.stdout).toContain("acknowledged before the kill");
    }, 300_000);

    it("a server that is not there: exit 1 naming its URL", async () => {
      const dead = `http://127.0.0.1:${await freeTcp()}`;
      const r = await execa(
        process.execPath,
        [bin, "fleet", "nodes", "--server", dead, "--token-file", tokenFile],
        {
          reject: false,
        },
      );
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(dead);
    });
  },
);
