// The fleet list at 1,000 nodes (GET /v1/fleet/nodes, `kvmstrap fleet nodes`) is one store query,
// not several per node: ServeFleet.list() over an embedded PGlite store holding 1,000 nodes with
// approvals, holds and events counts the statements it sends, and every node's view agrees with
// what the store's per-node queries (approval, holds, newest event) say of it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServeFleet } from "../../../src/app/fleet-serve.js";
import type { FleetStore } from "../../../src/fleet/store/index.js";

const N = 1000;
const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-list-${process.pid}-`));
let fleet: ServeFleet;
let store: FleetStore;

beforeAll(async () => {
  fleet = await ServeFleet.start(
    { store: path.join(dir, "store"), rack: "r1", source: "serve r1" },
    (m) => {
      throw new Error(m);
    },
    true,
  );
  store = await fleet.store;
  // 1,000 nodes in two racks; every third approved, every fifth held (every tenth twice, one of
  // them released), each with one to three events; node 7 has none.
  await store.sql.exec(`
    INSERT INTO nodes (uuid, serial, rack)
      SELECT 'uuid-' || i, 'S' || i, CASE WHEN i % 2 = 0 THEN 'r1' ELSE 'r2' END FROM generate_series(1, ${N}) i;
    INSERT INTO node_macs (mac, node_id)
      SELECT '52:54:00:00:' || lpad(to_hex(id / 256), 2, '0') || ':' || lpad(to_hex(id % 256), 2, '0'), id FROM nodes;
    INSERT INTO approvals (node_id, approved_by) SELECT id, 'op' FROM nodes WHERE id % 3 = 0;
    INSERT INTO holds (node_id, source, reason) SELECT id, 'operator', 'first ' || id FROM nodes WHERE id % 5 = 0;
    INSERT INTO holds (node_id, source, reason) SELECT id, 'answer', 'second ' || id FROM nodes WHERE id % 10 = 0;
    INSERT INTO holds (node_id, source, reason, released_at) SELECT id, 'operator', 'gone', now() FROM nodes WHERE id % 4 = 0;
  `);
  await store.sql.exec(`
    INSERT INTO events (time, source, node_id, type, body)
      SELECT now() - (k || ' s')::interval, 'test', n.id, 'e' || k, jsonb_build_object('detail', 'event ' || k || ' of ' || n.id)
      FROM nodes n, generate_series(1, 3) k WHERE n.id <> 7 AND k <= 1 + n.id % 3;
  `);
}, 60_000);

afterAll(async () => {
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

function counting(): { count: () => number; restore: () => void } {
  const sql = store.sql as { query: (...a: never[]) => Promise<unknown> };
  const original = sql.query;
  let n = 0;
  sql.query = (...a: never[]) => {
    n++;
    return original.apply(sql, a);
  };
  return {
    count: () => n,
    restore: () => {
      sql.query = original;
    },
  };
}

describe("ServeFleet.list at 1,000 nodes", () => {
  it("sends one query and maps approval, open holds and the newest event of every node", async () => {
    const c = counting();
    const t0 = performance.now();
    const views = await fleet.list();
    const bulkMs = performance.now() - t0;
    c.restore();
    expect(c.count()).toBe(1);
    expect(views).toHaveLength(N);

    // The per-node queries the list used before (approval, holds, newest event: N+1 statements).
    const per = counting();
    const t1 = performance.now();
    const perNode = await Promise.all(
      (await store.nodes()).map(async (n) => ({
        approval: await store.approval(n.id),
        holds: await store.holds(n.id),
        last: (await store.nodeEvents(n.id, 1))[0],
      })),
    );
    const perNodeMs = performance.now() - t1;
    per.restore();
    expect(per.count()).toBe(1 + 3 * N);
    console.log(
      `fleet list of ${N} nodes on PGlite: 1 query in ${bulkMs.toFixed(0)} ms; per node: ${per.count()} queries in ${perNodeMs.toFixed(0)} ms`,
    );

    views.forEach((v, i) => {
      const p = perNode[i];
      expect(v.approved).toBe(p?.approval !== undefined);
      expect(v.holds.map((h) => h.reason)).toEqual(p?.holds.map((h) => h.reason));
      expect(v.held).toBe((p?.holds.length ?? 0) > 0);
      expect(v.state).toBe(v.held ? "held" : "discovered");
      expect(v.lastEvent?.detail).toBe((p?.last?.body as { detail?: string } | undefined)?.detail);
    });
    const v30 = views.find((v) => v.id === "30");
    expect(v30).toMatchObject({
      approved: true,
      held: true,
      answer: "held",
      macs: ["52:54:00:00:00:1e"],
      rack: "r1",
      lastEvent: { detail: "event 1 of 30" },
    });
    expect(v30?.holds.map((h) => h.source)).toEqual(["operator", "answer"]);
    expect(views.find((v) => v.id === "7")?.lastEvent).toBeNull();
    expect(views.find((v) => v.id === "8")?.held).toBe(false); // its only hold was released
  });

  it("filters by rack in the same query, and a single node's view is the same mapping", async () => {
    const c = counting();
    const r2 = await fleet.list({ rack: "r2" });
    c.restore();
    expect(c.count()).toBe(1);
    expect(r2).toHaveLength(N / 2);
    expect(r2.every((v) => v.rack === "r2")).toBe(true);
    const all = await fleet.list();
    expect(await fleet.view(30)).toEqual(all.find((v) => v.id === "30"));
    expect((await fleet.list({ state: "held" })).length).toBe(N / 5);
  });
});
