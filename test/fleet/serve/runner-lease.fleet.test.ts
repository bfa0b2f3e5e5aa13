// One rollout runner per region: two `kvmstrap serve` (racks a and b) on one test-owned PostgreSQL
// 15. A rollout started, paused and resumed through the CLI against the follower's URL is run by the
// one serve holding the rollout lease; each node is powered on once, by that serve (the BMCs are a
// recording ipmitool on serve's PATH: no BMC exists here; it writes which process called it). After
// kill -9 of the leader, the follower takes the lease and the rollout goes on to done, nobody powered
// on twice. Fleet tier (a real PostgreSQL); nodes report their progress as serve would (store events).
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FleetStore, openPostgres } from "../../../src/fleet/store/index.js";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { makeNetboot, tempDir } from "../../pxe/serve/helpers.js";
import { postgresMissing, TestPostgres } from "../store/postgres-server.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/app/fleet-serve.js"));
const missing = postgresMissing();
const tmp = tempDir("lease");
const record = path.join(tmp.dir, "ipmi-calls");
const fakeBin = path.join(tmp.dir, "bin");
let pg: TestPostgres | undefined;
let store: FleetStore | undefined;
type Serve = { name: string; child: ChildProcess; base: string; tokenFile: string; out: string };
const serves: Serve[] = [];

async function serve(name: string, url: string): Promise<Serve> {
  const port = await freeTcp();
  const state = path.join(tmp.dir, `state-${name}`);
  const child = spawn(
    process.execPath,
    [
      bin,
      "serve",
      ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
      ...["--netboot", path.join(tmp.dir, "netboot"), "--ipxe-dir", path.join(tmp.dir, "ipxe")],
      ...["--state-dir", state, "--store", url, "--fleet", path.join(tmp.dir, "fleet"), "--rack", name],
      "--json",
    ],
    { env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH ?? "/usr/bin:/bin"}` } },
  );
  const r = {
    name,
    child,
    base: `http://127.0.0.1:${port}`,
    tokenFile: path.join(state, "admin.token"),
    out: "",
  };
  child.stdout?.on("data", (d: Buffer) => {
    r.out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    r.out += d.toString();
  });
  const until = Date.now() + 120_000;
  while (!r.out.includes('"listening"')) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`serve --rack ${name}: ${r.out}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  serves.push(r);
  return r;
}

const fleet = async (s: Serve, args: string[], env: Record<string, string> = {}) => {
  const r = await execa(
    process.execPath,
    [bin, "fleet", ...args, "--server", s.base, "--token-file", s.tokenFile],
    { reject: false, timeout: 30_000, env: { NO_COLOR: "1", IPMI_PASSWORD: "", ...env } },
  );
  expect(r.exitCode, `${args.join(" ")}: ${r.stderr}`).toBe(0);
  return r.stdout;
};

/** The recorded `chassis power on` calls: which serve (pid) asked which BMC. */
const calls = () =>
  (existsSync(record) ? readFileSync(record, "utf8") : "")
    .trim()
    .split("\n")
    .filter((l) => / chassis power on$/.test(l))
    .map((l) => {
      const [pid] = l.split(" ");
      return { pid: Number(pid), host: /-H (\S+)/.exec(l)?.[1] ?? "" };
    });

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  if (!built || missing) return;
  makeNetboot(path.join(tmp.dir, "netboot"));
  mkdirSync(path.join(tmp.dir, "ipxe"));
  mkdirSync(path.join(tmp.dir, "fleet"));
  writeFileSync(path.join(tmp.dir, "fleet", "site.yaml"), "version: 1\n");
  mkdirSync(fakeBin);
  // The recording BMC: every call, with the pid of the serve that ran it, answered as ipmitool would.
  writeFileSync(
    path.join(fakeBin, "ipmitool"),
    `#!/bin/sh\necho "$PPID $*" >> '${record}'\necho "Chassis Power Control: Up/On"\n`,
  );
  chmodSync(path.join(fakeBin, "ipmitool"), 0o755);
  pg = await TestPostgres.start("lease");
  await serve("a", pg.url());
  await serve("b", pg.url());
  store = await openPostgres(pg.url());
}, 180_000);

afterAll(async () => {
  for (const r of serves) if (r.child.exitCode === null) r.child.kill("SIGKILL");
  await store?.close();
  await pg?.stop();
  tmp.remove();
});

describe.skipIf(!built || missing !== undefined)(
  `one rollout runner per region${missing ? ` (skipped: ${missing})` : ""}${built ? "" : " (skipped: npm run build)"}`,
  () => {
    it("the lease holder powers each node on once; after kill -9 of it the follower takes over", async () => {
      const [a, b] = serves as [Serve, Serve];
      const ids: string[] = [];
      for (const [i, r] of [a, b, a].entries()) {
        const mac = `52:54:00:1e:00:0${i + 1}`;
        const res = await fetch(
          `${r.base}/boot/${mac}.ipxe?uuid=6b0e5a4c-2222-4a2b-9c3d-00000000000${i + 1}`,
        );
        expect(res.status).toBe(200);
        const node = await until(`node ${mac}`, async () => {
          const { nodes } = JSON.parse(await fleet(b, ["nodes", "--json"])) as {
            nodes: { id: string; macs: string[] }[];
          };
          return nodes.find((n) => n.macs.includes(mac));
        });
        ids.push(node.id);
        await fleet(b, ["approve", node.id]);
        await fleet(b, ["power", node.id, "--ipmi", `10.0.0.${i + 1}`, "--user", "admin"], {
          IPMI_PASSWORD: "not-a-secret",
        });
      }
      const started = JSON.parse(
        await fleet(b, [
          ...["rollout", "start", "--canary", "1", "--wave", "2", "--max-in-flight", "2"],
          ...["--max-per-rack", "2", "--power-interval", "0", "--json"],
        ]),
      ) as { id: unknown };
      const id = String(started.id);
      type View = { state: string; nodes: { id: unknown; state: string }[] };
      const status = async (s: Serve) =>
        JSON.parse(await fleet(s, ["rollout", "status", id, "--json"])) as View;

      // The canary: one node, powered on once, by one serve: the leader.
      const first = await until("the canary's power-on", async () => (calls().length ? calls() : undefined));
      const leader = serves.find((s) => s.child.pid === first[0]?.pid);
      expect(leader, `power-on by pid ${first[0]?.pid}`).toBeDefined();
      const follower = (leader === a ? b : a) as Serve;
      await new Promise((r) => setTimeout(r, 3000)); // room for a second runner to misbehave
      expect(calls()).toHaveLength(1);
      const canary = ids[Number(first[0]?.host.split(".")[3]) - 1] as string;

      // Actions work from the follower: the leader's view follows them.
      await fleet(follower, ["rollout", "pause", id]);
      await until("paused", async () =>
        (await status(leader as Serve)).state === "canary-paused" ? 1 : undefined,
      );
      await fleet(follower, ["rollout", "resume", id]);
      await until("resumed", async () =>
        (await status(leader as Serve)).state === "canary" ? 1 : undefined,
      );

      // The leader dies; the canary then verifies (as serve records a node's report).
      const killedAt = Date.now();
      leader?.child.kill("SIGKILL");
      await until("the leader's exit", async () =>
        leader?.child.exitCode !== null || leader?.child.signalCode ? 1 : undefined,
      );
      await store?.append({ type: "node-state", nodeId: Number(canary), state: "verified", source: "test" });

      // The follower takes the lease, passes the canary and powers the other two on.
      const rest = await until(
        "the follower's power-ons",
        async () => (calls().length >= 3 ? calls() : undefined),
        30_000,
      );
      console.log(
        `after kill -9 of the leader, the follower powered the next wave on in ${Date.now() - killedAt} ms`,
      );
      expect(rest.slice(1).map((c) => c.pid)).toEqual([follower.child.pid, follower.child.pid]);
      for (const n of ids.filter((x) => x !== canary))
        await store?.append({ type: "node-state", nodeId: Number(n), state: "verified", source: "test" });
      const done = await until("done", async () => {
        const v = await status(follower);
        return v.state === "done" ? v : undefined;
      });
      expect(done.nodes.map((n) => n.state)).toEqual(["verified", "verified", "verified"]);
      // Each BMC asked once, and the store recorded one power-on per node.
      expect(
        calls()
          .map((c) => c.host)
          .sort(),
      ).toEqual(["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
      const rows = await store?.sql.query<{ node_id: string; n: string }>(
        `SELECT node_id, count(*) AS n FROM events WHERE type = 'rollout-node' AND body->>'event' = 'power-on'
         AND body->>'rollout' = $1 GROUP BY node_id ORDER BY node_id`,
        [id],
      );
      expect(rows?.map((r) => [String(r.node_id), Number(r.n)])).toEqual(ids.map((n) => [n, 1]));
    }, 240_000);
  },
);
