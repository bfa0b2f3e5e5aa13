// The fleet store on both drivers: the same schema from the same migrations, identity resolution
// applied in the database, group-committed ingest, timelines, and LISTEN/NOTIFY reaching another
// connection.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EventRow, type FleetStore, openPglite, openStore } from "../../../src/fleet/store/index.js";
import { DRIVERS, freshTarget, open, removeTarget } from "./drivers.js";
import { postgresMissing, TestPostgres } from "./postgres-server.js";

const missing = postgresMissing();
let server: TestPostgres | undefined;

beforeAll(async () => {
  if (!missing) server = await TestPostgres.start("store");
});
afterAll(async () => {
  await server?.stop();
});

/** Tables, columns, indexes and triggers, as information_schema and pg_indexes list them. */
async function schemaOf(store: FleetStore): Promise<string[]> {
  const q = (t: string) => store.sql.query<Record<string, string>>(t);
  const cols = await q(`SELECT table_name, column_name, data_type, is_nullable, is_identity
    FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name`);
  const idx = await q(
    "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1, 2",
  );
  const trg = await q(`SELECT event_object_table, trigger_name, event_manipulation, action_timing
    FROM information_schema.triggers WHERE trigger_schema = 'public' ORDER BY 1, 2, 3`);
  return [...cols, ...idx, ...trg].map((r) => Object.values(r).join(" "));
}

describe("migrations", () => {
  it.skipIf(missing)("give PGlite and PostgreSQL 15 the same schema, once", async () => {
    const schemas: string[][] = [];
    for (const driver of DRIVERS) {
      const target = await freshTarget(driver, server);
      let store = await open(driver, target);
      schemas.push(await schemaOf(store));
      await store.close();
      store = await open(driver, target); // a reopen applies nothing twice
      expect(await store.sql.query("SELECT version, name FROM schema_version")).toEqual([
        { version: 1, name: "initial" },
        { version: 2, name: "rollout-runner" },
      ]);
      await store.close();
      removeTarget(driver, target);
    }
    expect(schemas[0]?.length).toBeGreaterThan(60);
    expect(schemas[1]).toEqual(schemas[0]);
  });
});

for (const driver of DRIVERS) {
  describe.skipIf(driver === "postgres" && missing)(`the store on ${driver}`, () => {
    let target: string;
    let store: FleetStore;
    beforeAll(async () => {
      target = await freshTarget(driver, server);
      store = await open(driver, target);
    });
    afterAll(async () => {
      await store?.close();
      removeTarget(driver, target);
    });

    it("resolves identities: NIC swap, motherboard swap, placeholder UUIDs", async () => {
      const uuid = "7a1c2e44-5b0d-4f6e-8a9b-0c1d2e3f4a5b";
      const boot = await store.resolveNode({ macs: ["52:54:00:AA:00:01"] }, { rack: "r1" });
      expect(boot.created).toBe(true);
      // iPXE's script request brings the UUID and serial for the MAC-only node.
      const ipxe = await store.resolveNode({ uuid, serial: "SRV-1", macs: ["52:54:00:aa:00:01"] });
      expect(ipxe).toMatchObject({ created: false, node: { id: boot.node.id, uuid, serial: "SRV-1" } });
      // NIC swap, from a detect report (the complete set).
      const swapped = await store.resolveNode({
        uuid,
        serial: "SRV-1",
        macs: ["52:54:00:aa:00:02", "52:54:00:aa:00:03"],
        complete: true,
      });
      expect(swapped.node.id).toBe(boot.node.id);
      expect(swapped.node.macs).toEqual(["52:54:00:aa:00:02", "52:54:00:aa:00:03"]);
      expect(await store.nodeByMac("52:54:00:aa:00:01")).toBeUndefined();
      // Motherboard swap keeping the add-in NIC: the same node, flagged and held.
      const board = await store.resolveNode({
        uuid: "0b8e1f7a-1111-4222-8333-944455556666",
        serial: "SRV-1",
        macs: ["52:54:00:aa:00:03"],
      });
      expect(board.node.id).toBe(boot.node.id);
      expect((await store.flags(boot.node.id)).map((f) => f.kind)).toEqual(["uuid-changed"]);
      expect((await store.holds(boot.node.id)).map((h) => h.source)).toEqual(["identity"]);
      // Two machines with the vendor's placeholder UUID stay two.
      const p = "03000200-0400-0500-0006-000700080009";
      const m1 = await store.resolveNode({ uuid: p, serial: "Default string", macs: ["52:54:00:bb:00:01"] });
      const m2 = await store.resolveNode({ uuid: p, serial: "Default string", macs: ["52:54:00:bb:00:02"] });
      expect(m1.created && m2.created).toBe(true);
      expect(m2.node.id).not.toBe(m1.node.id);
      expect(m1.node.uuid).toBeNull();
      const types = (await store.eventsSince(0)).map((e) => e.type);
      expect(types.filter((t) => t === "node-discovered")).toHaveLength(3);
      expect(types).toContain("identity-flag");
    });

    it("holds a node until it is approved and released", async () => {
      const { node } = await store.resolveNode({
        uuid: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
        serial: "H-1",
        macs: ["52:54:00:cc:00:01"],
      });
      expect(await store.cleared(node.id)).toBe(false);
      await store.approve(node.id, "ops", "rack r1 go");
      expect(await store.cleared(node.id)).toBe(true);
      await store.hold(node.id, "answer", "answer fails validation: network.bridges[0].ports");
      expect(await store.cleared(node.id)).toBe(false);
      expect(await store.release(node.id, "ops")).toBe(1);
      expect(await store.cleared(node.id)).toBe(true);
      await store.assign(node.id, ["site", "rack:r1", "node:H-1"], "rack == r1");
      expect(await store.assignment(node.id)).toEqual({
        layers: ["site", "rack:r1", "node:H-1"],
        rule: "rack == r1",
      });
      await store.saveReport(node.id, { cpu: { vendor: "GenuineIntel" }, numa: 2 });
      expect(await store.latestReport(node.id)).toEqual({ cpu: { vendor: "GenuineIntel" }, numa: 2 });
    });

    it("ingests events by group commit, in order, with timelines and current state", async () => {
      const { node } = await store.resolveNode({
        uuid: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        serial: "T-1",
        macs: ["52:54:00:dd:00:01"],
      });
      const before = store.ingestStats;
      const states = ["offered", "tftp", "ipxe", "script", "kernel"];
      // 200 events at once from 200 callers, a few of them moving the node (by MAC only).
      const acks = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          store.append({
            type: "node-progress",
            mac: "52:54:00:dd:00:01",
            source: "rack-1",
            ...(i % 40 === 0 ? { state: states[i / 40] } : {}),
            body: { i },
          }),
        ),
      );
      const after = store.ingestStats;
      expect(after.events - before.events).toBe(200);
      expect(after.batches - before.batches).toBeLessThan(20);
      // Each acknowledgement names the row holding that caller's event.
      const rows = await store.eventsSince(Math.min(...acks) - 1, 500);
      const bySeq = new Map(rows.map((r) => [r.seq, r]));
      acks.forEach((seq, i) => {
        expect(bySeq.get(seq)?.body).toEqual({ i });
        expect(bySeq.get(seq)?.nodeId).toBe(node.id);
      });
      expect((await store.timeline(node.id)).map((t) => t.state)).toEqual(states);
      expect((await store.node(node.id))?.state).toBe("kernel");
      await expect(store.sql.query("DELETE FROM events")).rejects.toThrow(/append-only/);
      // One bad event in a batch fails alone: the others are committed and acknowledged.
      const mixed = await Promise.allSettled(
        Array.from({ length: 30 }, (_, i) =>
          store.append({ type: "mixed", nodeId: i === 7 ? 99_999_999 : node.id, body: { i } }),
        ),
      );
      expect(mixed.map((r) => r.status).filter((s) => s === "rejected")).toHaveLength(1);
      expect(mixed[7]?.status).toBe("rejected");
      await expect(store.append({ type: "bad", time: "yesterday-ish" })).rejects.toThrow(/not a time/);
    });

    it("keeps rollouts, their waves and nodes, and leases per segment", async () => {
      const { node } = await store.resolveNode({ serial: "RO-1", macs: ["52:54:00:f0:00:01"] });
      const id = await store.createRollout("rack r1", { canary: 1, maxInFlight: 2, haltAt: 0.5 });
      await store.setWave(id, 0, "running");
      await store.setRolloutNode(id, node.id, 0, "installing");
      await store.setRolloutNode(id, node.id, 0, "verified", "verify passed");
      await store.setWave(id, 0, "done");
      await store.setRolloutStatus(id, "paused");
      expect(await store.rollout(id)).toMatchObject({
        name: "rack r1",
        status: "paused",
        params: { canary: 1 },
      });
      expect(await store.rolloutNodes(id)).toMatchObject([{ nodeId: node.id, wave: 0, state: "verified" }]);
      const [wave] = await store.sql.query<{ status: string; ended_at: Date | null }>(
        "SELECT status, ended_at FROM rollout_waves WHERE rollout_id = $1",
        [id],
      );
      expect(wave?.status).toBe("done");
      expect(wave?.ended_at).toBeInstanceOf(Date);
      const expiresAt = new Date(Date.now() + 3600_000);
      await store.putLease({ segment: "r1", mac: "52:54:00:f0:00:01", address: "10.0.0.10", expiresAt });
      await store.putLease({ segment: "r1", mac: "52:54:00:f0:00:01", address: "10.0.0.11", expiresAt });
      expect(await store.leases("r1")).toEqual([
        { segment: "r1", mac: "52:54:00:f0:00:01", address: "10.0.0.11", expiresAt },
      ]);
      // One address per segment: a second MAC cannot take it.
      await expect(
        store.putLease({ segment: "r1", mac: "52:54:00:f0:00:02", address: "10.0.0.11", expiresAt }),
      ).rejects.toThrow();
    });

    // PGlite only: PostgreSQL is shared by design.
    if (driver === "pglite")
      it("refuses a second opener of the same directory while the first lives", async () => {
        // openStore takes a directory for an embedded store.
        await expect(openStore(target)).rejects.toThrow(new RegExp(`open in process ${process.pid}`));
      });

    it("publishes committed events to a subscriber on another connection", async () => {
      // PGlite is one process's database: its "other connection" is another subscriber in it.
      const other = driver === "postgres" ? await openStore(target) : store;
      expect(other.driver).toBe(driver);
      const seen: EventRow[] = [];
      const stop = await other.subscribe((events) => seen.push(...events));
      try {
        const seqs = await Promise.all([1, 2, 3].map((i) => store.append({ type: "ping", body: { i } })));
        const { node } = await store.resolveNode({ serial: "LIVE-1", macs: ["52:54:00:ee:00:01"] });
        await waitFor(() => seen.some((e) => e.type === "node-discovered" && e.nodeId === node.id));
        expect(seen.filter((e) => e.type === "ping").map((e) => e.seq)).toEqual(seqs);
        expect(new Set(seen.map((e) => e.seq)).size).toBe(seen.length);
      } finally {
        await stop();
        if (other !== store) await other.close();
      }
    });
  });
}

describe("PGlite maintenance", () => {
  it("vacuums the nodes table as events move nodes (single-user PostgreSQL has no autovacuum)", async () => {
    const dir = await freshTarget("pglite", undefined);
    const store = await openPglite(dir, { vacuumEvery: 50 });
    try {
      const { node } = await store.resolveNode({ serial: "VAC-1", macs: ["52:54:00:ab:00:01"] });
      const vacuums = async () =>
        Number(
          (
            await store.sql.query<{ n: number }>(
              "SELECT vacuum_count AS n FROM pg_stat_user_tables WHERE relname = 'nodes'",
            )
          )[0]?.n,
        );
      expect(await vacuums()).toBe(0);
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => store.append({ type: "t", nodeId: node.id, state: `s${i}` })),
      );
      expect(await vacuums()).toBe(0); // 40 moves: not yet
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.append({ type: "t", nodeId: node.id, state: `s${i}` })),
      );
      let n = 0;
      await waitFor(
        () => n > 0,
        10_000,
        async () => {
          n = await vacuums();
        },
      );
      expect(n).toBe(1);
    } finally {
      await store.close();
      removeTarget("pglite", dir);
    }
  });
});

async function waitFor(ok: () => boolean, ms = 10_000, poll?: () => Promise<void>): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    await poll?.();
    if (ok()) return;
    if (Date.now() > end) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}
