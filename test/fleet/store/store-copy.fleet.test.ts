// `kvmstrap fleet store-copy` through the real CLI: an embedded (PGlite) store filled through the
// store's own API (nodes with identities, MACs and a flag, 2,500 events over three batches, their
// timelines, a report, approvals, holds, an assignment, a rollout with waves and nodes, power
// settings with a BMC password, a lease) copied into a test-owned PostgreSQL 15. Every table's rows
// are then read from both sides and compared; the sequences are past the copied ids; the password
// is in no output; a second copy into the now full target, the same store twice, an unreachable
// URL and a source with a newer schema are each refused with exit 2 and one line.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { storeTables } from "../../../src/fleet/store/copy.js";
import {
  type FleetStore,
  openPglite,
  openPostgres,
  ROLLOUT_RUNNER_LEASE,
} from "../../../src/fleet/store/index.js";
import { RolloutStore } from "../../../src/fleet/store/rollouts.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { freshTarget } from "./drivers.js";
import { postgresMissing, TestPostgres } from "./postgres-server.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const built = existsSync(path.join(projectRoot, "dist/cli/fleet-store-command.js"));
const missing = postgresMissing() ?? (built ? undefined : "run npm run build first");
const SECRET = `bmc-${process.pid}-Zr8`;
const EVENTS = 2_500;
let server: TestPostgres | undefined;
const source = mkdtempSync(path.join(tmpdir(), `kvmstrap-copy-src-${process.pid}-`));
let target = "";

const cli = (...args: string[]) =>
  execa("node", [bin, "fleet", "store-copy", ...args], { reject: false, timeout: 120_000 });

/** Every row of every table, in key order, as jsonb text: what "equal" means here. */
async function dump(store: FleetStore): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const t of await storeTables(store.sql)) {
    const key = t.key.map((k) => `"${k.column}"`).join(", ");
    const rows = await store.sql.query<{ j: string }>(
      `SELECT to_jsonb(t)::text AS j FROM "${t.name}" t ORDER BY ${key}`,
    );
    out[t.name] = rows.map((r) => r.j);
  }
  return out;
}

async function fill(store: FleetStore): Promise<void> {
  const a = await store.resolveNode(
    {
      uuid: "7a1c2e44-5b0d-4f6e-8a9b-0c1d2e3f4a5b",
      serial: "CP-1",
      macs: ["52:54:00:c0:00:01", "52:54:00:c0:00:02"],
    },
    { rack: "r1" },
  );
  const b = await store.resolveNode({ serial: "CP-2", macs: ["52:54:00:c0:00:03"] }, { rack: "r2" });
  // The MAC moves to a third machine: an identity flag on it.
  const c = await store.resolveNode({ serial: "CP-3", macs: ["52:54:00:c0:00:03", "52:54:00:c0:00:04"] });
  await store.saveReport(a.node.id, { cpu: { vendor: "GenuineIntel" }, numa: 2, big: 2 ** 40 });
  await store.approve(a.node.id, "ops", "rack r1 go");
  await store.approve(c.node.id, "ops");
  await store.hold(b.node.id, "operator", "disk swap pending", "ops");
  await store.assign(a.node.id, ["site", "rack:r1", "node:node-1"], "rack == r1");
  const states = ["discovered", "booting", "installing", "installed"];
  await Promise.all(
    Array.from({ length: EVENTS }, (_, i) =>
      store.append({
        type: "progress",
        nodeId: [a, b, c][i % 3]?.node.id,
        mac: "52:54:00:c0:00:01",
        state: i % 100 === 0 ? states[(i / 100) % 4] : undefined,
        body: { i, note: "quote ' and \" and \\ and ü" },
      }),
    ),
  );
  const id = await store.createRollout("rack r1", { canary: 1, maxInFlight: 2 }, "running");
  await store.setWave(id, 0, "done");
  await store.setWave(id, 1, "running");
  await store.setRolloutNode(id, a.node.id, 0, "verified", "verify passed");
  await store.setRolloutNode(id, c.node.id, 1, "installing");
  const rs = new RolloutStore(store);
  await rs.setPower(a.node.id, { driver: "ipmi", host: "10.0.0.5", user: "admin", password: SECRET });
  await rs.setPower(c.node.id, { driver: "libvirt", domain: "node-3" });
  await store.putLease({
    segment: "r1",
    mac: "52:54:00:c0:00:01",
    address: "10.0.0.10",
    expiresAt: new Date(Date.now() + 3_600_000),
  });
}

beforeAll(async () => {
  if (missing) return;
  server = await TestPostgres.start("copy");
  const store = await openPglite(source);
  try {
    await fill(store);
  } finally {
    await store.close();
  }
  target = await freshTarget("postgres", server);
}, 120_000);

afterAll(async () => {
  await server?.stop();
  rmSync(source, { recursive: true, force: true });
});

describe.skipIf(missing)(`fleet store-copy${missing ? ` (skipped: ${missing})` : ""}`, () => {
  it("copies every table of an embedded store into PostgreSQL, ids and sequences included", async () => {
    const r = await cli("--from", source, "--to", target, "--json");
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).not.toContain(SECRET);
    const result = JSON.parse(r.stdout) as { tables: { table: string; source: number; target: number }[] };
    const counts = Object.fromEntries(result.tables.map((t) => [t.table, t.target]));
    expect(counts).toMatchObject({ nodes: 3, events: expect.any(Number), node_power: 2, rollout_nodes: 2 });
    expect(counts.events).toBeGreaterThanOrEqual(EVENTS);
    for (const t of result.tables) expect(t.source).toBe(t.target);
    // Parents before children, as the foreign keys require.
    const order = result.tables.map((t) => t.table);
    expect(order.indexOf("nodes")).toBeLessThan(order.indexOf("node_power"));
    expect(order.indexOf("rollouts")).toBeLessThan(order.indexOf("rollout_nodes"));

    const from = await openPglite(source);
    const to = await openPostgres(target);
    try {
      const [a, b] = [await dump(from), await dump(to)];
      expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
      expect(Object.keys(a)).toEqual(
        expect.arrayContaining(["identity_flags", "timelines", "assignments", "leases"]),
      );
      for (const t of Object.keys(a)) {
        expect(b[t]?.length, t).toBe(a[t]?.length);
        expect(b[t], t).toEqual(a[t]);
        if (t !== "schema_version") expect(a[t]?.length, `${t} filled by the test`).toBeGreaterThan(0);
      }
      // New rows take fresh ids on the target.
      const maxNode = Number(
        (await to.sql.query<{ m: string }>("SELECT max(id)::text AS m FROM nodes"))[0]?.m,
      );
      const fresh = await to.resolveNode({ serial: "CP-NEW", macs: ["52:54:00:c0:00:99"] });
      expect(fresh.node.id).toBe(maxNode + 1);
      const maxSeq = Number(
        (await to.sql.query<{ m: string }>("SELECT max(seq)::text AS m FROM events"))[0]?.m,
      );
      expect(await to.append({ type: "after-copy", body: {} })).toBeGreaterThan(maxSeq);
      const flag = await to.hold(fresh.node.id, "operator", "new");
      const maxHold = (await from.sql.query<{ m: string }>("SELECT max(id)::text AS m FROM holds"))[0]?.m;
      expect(flag).toBeGreaterThan(Number(maxHold));
    } finally {
      await from.close();
      await to.close();
    }
  }, 120_000);

  it("prints the counts as text, never a password", async () => {
    const second = await freshTarget("postgres", server);
    const r = await cli("--from", source, "--to", second);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^node_power\s+2\s+2$/m);
    expect(r.stdout).toMatch(/^nodes\s+3\s+3$/m);
    expect(`${r.stdout}${r.stderr}`).not.toContain(SECRET);
  }, 60_000);

  it("copies back from PostgreSQL to an embedded store, and refuses a source a serve is using", async () => {
    // A running serve holds the region's rollout-runner lease (an advisory lock): the same lock here.
    const serve = new pg.Client({ connectionString: target });
    await serve.connect();
    await serve.query("SELECT pg_advisory_lock($1)", [ROLLOUT_RUNNER_LEASE]);
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-copy-back-${process.pid}-`));
    try {
      const busy = await cli("--from", target, "--to", dir);
      expect(busy.exitCode).toBe(2);
      expect(busy.stderr).toMatch(/a kvmstrap serve is using it \(PostgreSQL session \d+/);
      await serve.end();
      // The same lease held on an empty PostgreSQL target: a serve there is refused too.
      const empty = await freshTarget("postgres", server);
      const other = new pg.Client({ connectionString: empty });
      await other.connect();
      await openPostgres(empty).then((s) => s.close()); // its tables, as serve would have made them
      await other.query("SELECT pg_advisory_lock($1)", [ROLLOUT_RUNNER_LEASE]);
      const served = await cli("--from", target, "--to", empty);
      await other.end();
      expect(served.exitCode).toBe(2);
      expect(served.stderr).toMatch(/target .*a kvmstrap serve is using it/);
      const r = await cli("--from", target, "--to", dir, "--json");
      expect(r.exitCode, r.stderr).toBe(0);
      const from = await openPostgres(target);
      const to = await openPglite(dir);
      try {
        expect(await dump(to)).toEqual(await dump(from));
      } finally {
        await from.close();
        await to.close();
      }
      // An embedded store open in another live process (this one) is refused by its lock.
      const boot = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
      writeFileSync(path.join(dir, "kvmstrap-fleet.pid"), `${process.pid} ${boot}\n`);
      const locked = await cli("--from", dir, "--to", await freshTarget("postgres", server));
      expect(locked.exitCode).toBe(2);
      expect(locked.stderr).toContain(`the fleet store is open in process ${process.pid}`);
    } finally {
      await serve.end().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it("refuses a target that holds rows, the same store twice, a bad URL, a newer schema", async () => {
    const oneLine = (r: { exitCode?: number; stderr: string; stdout: string }, re: RegExp) => {
      expect(r.exitCode, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(re);
    };
    const full = await cli("--from", source, "--to", target);
    oneLine(full, /target store is not empty \(.*nodes: 4.*\): store-copy copies only into an empty store/);
    oneLine(await cli("--from", source, "--to", `${source}/`), /same store/);
    oneLine(
      await cli(
        "--from",
        source,
        "--to",
        `postgresql://kvmstrap@localhost:5432/x?host=${source}/no-such-dir`,
      ),
      /target: .*cannot reach the fleet's PostgreSQL/,
    );
    oneLine(await cli("--from", path.join(source, "nothing"), "--to", target), /no fleet store there/);
    const newer = await freshTarget("postgres", server);
    const s = await openPostgres(newer);
    await s.sql.query("INSERT INTO schema_version (version, name) VALUES (99, 'from-the-future')");
    await s.close();
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-copy-new-${process.pid}-`));
    try {
      oneLine(
        await cli("--from", newer, "--to", dir),
        /source .*schema version 99, newer than this kvmstrap/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Nothing was written by the refused copies.
    const c = new pg.Client({ connectionString: target });
    await c.connect();
    const n = await c.query("SELECT count(*)::int AS n FROM nodes");
    await c.end();
    expect(n.rows[0].n).toBe(4);
  }, 120_000);
});
