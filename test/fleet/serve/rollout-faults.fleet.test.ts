// Fault tests of a rollout with the real parts: a test-owned PostgreSQL 15, the shipped `kvmstrap
// serve --fleet --store postgres://... --rack r1` as a child process, the real fleet CLI (approve,
// power through libvirt's test driver, rollout start and status), and seven simulated nodes that
// speak the node protocol over HTTP as the appliance's agent does (boot script with their DMI, report,
// answer polls that wait for their wave, then answer-fetched, installing, installed, rebooted,
// verified; every event retried until it gets a 2xx). Two faults mid-wave:
//   1. serve is killed (SIGKILL) the moment a wave-1 node's event was acknowledged, then started
//      again over the same PostgreSQL: every acknowledged event is still in the store (and the
//      state-moving ones on the node's timeline), the rollout resumes where it was;
//   2. PostgreSQL is stopped (immediate, as a crash) and started on the same data directory while
//      serve runs and a wave-2 node is installing: serve survives, nothing acknowledged is lost.
// Then the rollout reaches done with every node verified, and its events hold exactly one power-on
// (and one "powered") per node: nobody was powered on twice. Fleet tier (a real PostgreSQL).
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NODE_PATHS, TOKEN_REFRESH_HEADER } from "../../../src/app/node-protocol.js";
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
import { postgresMissing, TestPostgres } from "../store/postgres-server.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/cli/fleet-power-command.js"));
const virsh = existsSync("/usr/bin/virsh");
const missing = postgresMissing();
const skip = !built
  ? "run npm run build"
  : (missing ??
    (!virsh
      ? "no virsh (apt-get install libvirt-clients)"
      : !sharedHostsAvailable
        ? SKIP_REASON
        : undefined));
const tmp = tempDir("rollout-faults");
const state = path.join(tmp.dir, "state");
const fleetDir = path.join(tmp.dir, "fleet");
const tokenFile = path.join(state, "admin.token");
const NODES = 7; // a canary of 1, then two waves of 3
const DEADLINE = Date.now() + 20 * 60_000; // everything a sim node does ends by then
const PHASES = ["answer-fetched", "installing", "installed", "rebooted", "verified"] as const;
/** Phases whose event moves the node's boot state (so they are on its timeline with their detail). */
const MOVES = new Set(["installing", "installed", "rebooted", "verified"]);

let pg: TestPostgres | undefined;
let child: ChildProcess | undefined;
let port = 0;
let base = "";
let out = "";
let report: HostReport;
const stopSims = new AbortController();

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function startServe(): Promise<void> {
  out = "";
  const c = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
    ...["--state-dir", state, "--store", pg?.url() ?? "", "--fleet", fleetDir, "--rack", "r1", "--json"],
  ]);
  child = c;
  c.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  c.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const until = Date.now() + 120_000;
  while (!out.includes('"listening"')) {
    if (Date.now() > until || c.exitCode !== null) throw new Error(`serve did not start: ${out}`);
    await pause(100);
  }
}

const cli = (args: string[]) =>
  execa(process.execPath, [bin, "fleet", ...args, "--server", base, "--token-file", tokenFile], {
    reject: false,
    timeout: 60_000,
    env: { NO_COLOR: "1" },
  });
const ok = async (args: string[]) => {
  const r = await cli(args);
  expect(r.exitCode, `fleet ${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
};

type View = {
  id: number;
  state: string;
  wave: number;
  nodes: { id: string; state: string; wave: number | null; reason: string | null }[];
};
const status = async (id: number): Promise<View> =>
  JSON.parse(await ok(["rollout", "status", String(id), "--json"]));

/** Polls the rollout until `done(view)`, bounded generously (a loaded 2-core machine). */
async function until(id: number, done: (v: View) => boolean, ms = 300_000): Promise<View> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await cli(["rollout", "status", String(id), "--json"]);
    const v = r.exitCode === 0 ? (JSON.parse(r.stdout) as View) : undefined;
    if (v && done(v)) return v;
    if (Date.now() > end) throw new Error(`rollout ${id} never got there: ${r.stdout || r.stderr}\n${out}`);
    await pause(300);
  }
}

// --- the simulated nodes ---------------------------------------------------------------------------

interface Sim {
  n: number;
  mac: string;
  uuid: string;
  serial: string;
  id: string;
  token: string;
  /** Events the server acknowledged (2xx), in order. */
  acked: { phase: string; detail: string }[];
  /** Attempts the server refused or that failed on the way (never counted as sent). */
  refused: number;
  answered: boolean;
  done: Promise<void>;
}
const sims: Sim[] = [];
/** The longest a single acknowledged POST took (ms), for the summary line. */
let slowest = 0;
/** When each acknowledged POST was sent and answered. */
const sent: { from: number; to: number }[] = [];
const t = Date.now();
const mark = (what: string) => console.log(`${Math.round((Date.now() - t) / 1000)} s: ${what}`);
/** Called after every acknowledged event (the faults are triggered from here). */
let onAck: (s: Sim, phase: string) => void = () => {};
/**
 * While set, the sims hold their next phase: the test reads the store between the two faults, and a
 * rollout that moved on meanwhile would set off the PostgreSQL restart under those reads.
 */
let held: { promise: Promise<void>; release: () => void } | undefined;
function hold(): NonNullable<typeof held> {
  let release = () => {};
  const promise = new Promise<void>((r) => {
    release = r;
  });
  return { promise, release };
}

/** One HTTP request, its failures as a status of 0 (the sim retries both). */
async function call(
  url: string,
  init: RequestInit,
): Promise<{ status: number; text: string; headers: Headers }> {
  try {
    const res = await fetch(url, {
      ...init,
      signal: AbortSignal.any([stopSims.signal, AbortSignal.timeout(120_000)]),
    });
    return { status: res.status, text: await res.text(), headers: res.headers };
  } catch {
    return { status: 0, text: "", headers: new Headers() };
  }
}

function alive(): void {
  if (stopSims.signal.aborted || Date.now() > DEADLINE) throw new Error("the simulated nodes were stopped");
}

/** Posts one lifecycle event until the server acknowledges it (the agent retries 5xx and lost connections). */
async function postEvent(s: Sim, phase: string): Promise<void> {
  const detail = `sim ${s.mac} ${phase}`;
  for (let attempt = 0; ; attempt++) {
    alive();
    const t0 = Date.now();
    const r = await call(`${base}${NODE_PATHS.events(s.mac)}`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ type: "node", phase, time: new Date().toISOString(), detail }),
    });
    if (r.status >= 200 && r.status < 300) {
      slowest = Math.max(slowest, Date.now() - t0);
      sent.push({ from: t0, to: Date.now() });
      s.acked.push({ phase, detail });
      onAck(s, phase);
      return;
    }
    if (r.status >= 400 && r.status < 500)
      throw new Error(`${detail}: refused for good: ${r.status} ${r.text}`);
    s.refused++;
    await pause(Math.min(2000, 200 * 2 ** Math.min(attempt, 4)));
  }
}

/** The appliance after its report: polls its answer until its wave has it, then installs. */
async function runSim(s: Sim): Promise<void> {
  await postEvent(s, "appliance-up");
  for (;;) {
    alive();
    const r = await call(`${base}${NODE_PATHS.answer(s.mac)}`, {
      headers: { authorization: `Bearer ${s.token}` },
    });
    const fresh = r.headers.get(TOKEN_REFRESH_HEADER);
    if (fresh) s.token = fresh;
    if (r.status === 200) {
      if (!/^version:\s*1/m.test(r.text)) throw new Error(`${s.mac}: not an answer: ${r.text.slice(0, 200)}`);
      break;
    }
    if (r.status !== 0 && r.status !== 409 && r.status < 500)
      throw new Error(`${s.mac}: answer: ${r.status} ${r.text}`);
    await pause(250);
  }
  s.answered = true;
  for (const phase of PHASES) {
    await held?.promise;
    await postEvent(s, phase);
    await pause(400); // the install takes a while: other nodes of the wave stay in flight meanwhile
  }
}

/** The node's stored events' details (every event the intake committed, state-moving or not). */
async function storedDetails(s: Sim): Promise<string[]> {
  const rows = await pg?.psql(
    "fleet",
    `SELECT body->>'detail' FROM events WHERE node_id = ${Number(s.id)} ORDER BY seq`,
  );
  return (rows ?? "").split("\n").filter(Boolean);
}

/** Every acknowledged event of every node is kept: in the store, and on the timeline if it moved the node. */
async function expectNothingLost(label: string): Promise<number> {
  let count = 0;
  for (const s of sims) {
    const acked = [...s.acked];
    const stored = await storedDetails(s);
    const shown = JSON.parse(await ok(["show", s.id, "--json"])) as {
      timeline: { state: string; detail: string }[];
    };
    const timeline = shown.timeline.map((t) => t.detail);
    for (const a of acked) {
      expect(stored, `${label}: node ${s.id}: acknowledged "${a.detail}" is not in the store`).toContain(
        a.detail,
      );
      if (MOVES.has(a.phase))
        expect(
          timeline,
          `${label}: node ${s.id}: acknowledged "${a.detail}" is not on its timeline`,
        ).toContain(a.detail);
      count++;
    }
  }
  return count;
}

beforeAll(async () => {
  if (skip) return;
  makeNetboot(path.join(tmp.dir, "netboot"));
  mkdirSync(path.join(tmp.dir, "ipxe"));
  mkdirSync(fleetDir);
  cpSync(
    path.join(projectRoot, "test/fleet/cases/held-missing-nic/fleet/site.yaml"),
    path.join(fleetDir, "site.yaml"),
  );
  report = await detectHost({
    fs: new RootedHostFs(sharedHostRoot("amd-ryzen-1600-desktop")),
    probe: { mode: "never" },
    pciIds: null,
  });
  pg = await TestPostgres.start("faults");
  port = await freeTcp();
  base = `http://127.0.0.1:${port}`;
  await startServe();
}, 300_000);
afterAll(async () => {
  stopSims.abort();
  await Promise.allSettled(sims.map((s) => s.done));
  if (child && child.exitCode === null) child.kill("SIGKILL");
  await pg?.stop();
  tmp.remove();
});

describe.skipIf(skip !== undefined)(
  `a rollout through kill -9 of serve and a PostgreSQL restart${skip ? ` (skipped: ${skip})` : ""}`,
  () => {
    it("loses no acknowledged event, powers nobody on twice, resumes and reaches done", async () => {
      // Discovery: each node boots (its DMI in the script URL), reports, and is approved and given
      // power settings through the CLI (libvirt's test driver: its domain "test" is running).
      for (let n = 1; n <= NODES; n++) {
        const mac = `52:54:00:fa:00:${String(n).padStart(2, "0")}`;
        const uuid = `4c4c4544-0000-4000-8000-0000000fa0${String(n).padStart(2, "0")}`;
        const serial = `FLT-${n}`;
        const res = await fetch(`${base}/boot/${mac}.ipxe?uuid=${uuid}&serial=${serial}&asset=`);
        expect(res.status).toBe(200);
        const token = /kvmstrap\.token=(\S+)/.exec(await res.text())?.[1] ?? "";
        expect(token).not.toBe("");
        const rep = await fetch(`${base}${NODE_PATHS.report(mac)}`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ identity: { uuid, serial, assetTag: null, macs: [mac] }, report }),
        });
        expect(rep.status).toBe(200);
        const { node } = (await rep.json()) as { node: { id: string } };
        await ok(["approve", node.id]);
        await ok(["power", node.id, "--libvirt", "test", "--uri", "test:///default"]);
        sims.push({
          n,
          mac,
          uuid,
          serial,
          id: node.id,
          token,
          acked: [],
          refused: 0,
          answered: false,
          done: Promise.resolve(),
        });
      }

      // Faults, triggered by the sims' own acknowledgements.
      let killed: Promise<void> | undefined;
      let pgRestart: Promise<void> | undefined;
      let pgDownAt = 0;
      let pgDownMs = 0;
      let pgInFlight = 0;
      const verified = () => sims.filter((s) => s.acked.some((a) => a.phase === "verified")).length;
      onAck = (s, phase) => {
        // 1: a wave-1 node's "installing" was just acknowledged (the canary is verified): kill -9.
        if (!killed && phase === "installing" && verified() >= 1) {
          const c = child as ChildProcess;
          killed = new Promise((r) => c.once("exit", () => r()));
          held = hold();
          c.kill("SIGKILL");
        }
        // 2: a wave-2 node is installing (canary and wave 1 verified): PostgreSQL goes down and up.
        if (killed && !pgRestart && phase === "installing" && verified() >= 4) {
          pgRestart = (async () => {
            pgInFlight = Number(
              await pg?.psql(
                "fleet",
                "SELECT count(*) FROM rollout_nodes WHERE state IN ('powering-on','booting','installing','installed')",
              ),
            );
            await pg?.crash();
            pgDownAt = Date.now();
            // Down until the sims have tried the server a few times (their events wait or are refused).
            const tried = () => sims.reduce((k, x) => k + x.refused, 0);
            const before = tried();
            const end = Date.now() + 8000;
            while (Date.now() < end && tried() < before + 3) await pause(100);
            await pg?.startServer();
            pgDownMs = Date.now() - pgDownAt;
          })();
        }
        void s;
      };

      const started = await ok([
        ...[
          "rollout",
          "start",
          "--canary",
          "1",
          "--wave",
          "3",
          "--max-in-flight",
          "3",
          "--max-per-rack",
          "3",
        ],
        ...["--power-interval", "0", "--rack", "r1", "--json"],
      ]);
      const id = Number(JSON.parse(started).id);
      mark(`rollout ${id} started`);
      expect((await status(id)).nodes).toHaveLength(NODES);
      for (const s of sims) s.done = runSim(s);

      // Fault 1: serve killed mid-wave.
      const end1 = Date.now() + 300_000;
      while (!killed && Date.now() < end1) await pause(100);
      expect(killed, "wave 1 never started installing").toBeDefined();
      await killed;
      mark("serve killed");
      const [frozen] = (
        (await pg?.psql("fleet", `SELECT status || ' ' || wave FROM rollouts WHERE id = ${id}`)) ?? ""
      ).split("\n");
      const inFlight = (
        (await pg?.psql(
          "fleet",
          `SELECT node_id || ' ' || state FROM rollout_nodes WHERE rollout_id = ${id} AND state IN ('powering-on','booting','installing','installed') ORDER BY node_id`,
        )) ?? ""
      )
        .split("\n")
        .filter(Boolean);
      expect(frozen).toBe("running 1");
      expect(inFlight.length, "nodes in flight when serve was killed").toBeGreaterThan(0);
      await startServe();
      mark("serve restarted");
      const servePid = child?.pid;
      const keptAfterKill = await expectNothingLost("after kill -9");
      expect(keptAfterKill).toBeGreaterThan(NODES); // every appliance-up, the canary's install, wave 1's
      // Resumed where it was: the same wave, its in-flight nodes still in flight or further on.
      const resumed = await status(id);
      expect(resumed.state).toBe("running");
      expect(resumed.wave).toBeGreaterThanOrEqual(1);
      for (const line of inFlight) {
        const [nodeId] = line.split(" ");
        expect(resumed.nodes.find((x) => x.id === nodeId)?.state).not.toMatch(/^(waiting|failed)$/);
      }
      held?.release(); // the sims go on
      held = undefined;

      // Fault 2: PostgreSQL restarted mid-wave; then the rollout goes on to done.
      const end2 = Date.now() + 300_000;
      while (!pgRestart && Date.now() < end2) await pause(100);
      expect(pgRestart, "wave 2 never started installing").toBeDefined();
      await pgRestart;
      mark("PostgreSQL restarted");
      expect(pgDownAt).toBeGreaterThan(0);
      expect(pgInFlight, "nodes in flight when PostgreSQL went down").toBeGreaterThan(0);
      // Events were posted while PostgreSQL was down: serve held them until it was back (or refused
      // them, and the sims sent them again); they are checked below like every other.
      const pgUpAt = pgDownAt + pgDownMs;
      // Right after the restart, serve reads the store again (the fleet routes) and has lost nothing.
      await expectNothingLost("after the PostgreSQL restart");
      const duringOutage = () => sent.filter((x) => x.from >= pgDownAt && x.from < pgUpAt).length;
      const done = await until(
        id,
        (v) => v.state === "done" || v.state.includes("halted") || v.state === "aborted",
      );
      await Promise.all(sims.map((s) => s.done));
      mark(`rollout ${done.state}`);
      expect(done.state, JSON.stringify(done.nodes)).toBe("done");
      expect(done.nodes.map((x) => x.state)).toEqual(Array(NODES).fill("verified"));
      expect(child?.exitCode, `serve exited on the PostgreSQL restart: ${out}`).toBeNull();
      expect(child?.pid).toBe(servePid);

      expect(duringOutage(), "no event was posted while PostgreSQL was down").toBeGreaterThan(0);
      const kept = await expectNothingLost("at the end");
      expect(kept).toBe(NODES * (1 + PHASES.length));
      // Exactly one power-on per node over the whole rollout, across both faults; at most one
      // "powered" (a node whose power-on was saved just before the kill has its port's answer lost
      // with the process: the restarted runner finds it in flight and never asks the port again).
      const counts = (
        (await pg?.psql(
          "fleet",
          `SELECT node_id || ' ' || (body->>'event') || ' ' || count(*) FROM events
           WHERE type = 'rollout-node' AND (body->>'rollout')::int = ${id} AND body->>'event' IN ('power-on', 'powered')
           GROUP BY node_id, body->>'event' ORDER BY node_id, body->>'event'`,
        )) ?? ""
      )
        .split("\n")
        .filter(Boolean);
      const times = (nodeId: string, event: string) =>
        Number(counts.find((l) => l.startsWith(`${nodeId} ${event} `))?.split(" ")[2] ?? 0);
      for (const s of sims) {
        expect(times(s.id, "power-on"), `node ${s.id}: power-ons`).toBe(1);
        expect(times(s.id, "powered"), `node ${s.id}: powered`).toBeLessThanOrEqual(1);
      }
      console.log(
        `rollout-faults: ${kept} events acknowledged and kept; ${sims.reduce((k, s) => k + s.refused, 0)} attempts refused or cut off and retried; PostgreSQL down ${pgDownMs} ms (${duringOutage()} events posted meanwhile, all kept); the slowest acknowledgement took ${slowest} ms`,
      );
      // What serve said about its store through the restart (a problem line is kept for the log).
      for (const line of out
        .split("\n")
        .filter((l) => /fleet store|"problem"|error/i.test(l) && !l.includes('"type":"rollout"'))
        .slice(0, 10))
        console.log(`serve: ${line.slice(0, 300)}`);
    }, 900_000);
  },
);
