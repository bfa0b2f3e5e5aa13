// Nothing acknowledged is lost: a writer process killed with SIGKILL mid-stream (PGlite and
// PostgreSQL), and a PostgreSQL crashed and restarted under a writer that keeps going.
import { spawn } from "node:child_process";
import { rmSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { EventRow, FleetStore } from "../../../src/fleet/store/index.js";
import { bundle } from "./bundle.js";
import { DRIVERS, freshTarget, open, removeTarget } from "./drivers.js";
import { postgresMissing, TestPostgres } from "./postgres-server.js";

const missing = postgresMissing();
let server: TestPostgres | undefined;
let child: string;

beforeAll(async () => {
  child = await bundle(path.join(import.meta.dirname, "ingest-child.ts"), "ingest-child");
  if (!missing) server = await TestPostgres.start("durability");
});
afterAll(async () => {
  await server?.stop();
  if (child) rmSync(child, { force: true });
});

/** Every kill-test event stored: i -> seq. */
async function stored(store: FleetStore): Promise<Map<number, number>> {
  const rows = await store.sql.query<{ seq: string; i: string }>(
    "SELECT seq, body->>'i' AS i FROM events WHERE type = 'kill-test'",
  );
  const out = new Map<number, number>();
  for (const r of rows) {
    expect(out.has(Number(r.i)), `event ${r.i} stored twice`).toBe(false);
    out.set(Number(r.i), Number(r.seq));
  }
  return out;
}

for (const driver of DRIVERS) {
  it.skipIf(driver === "postgres" && missing)(
    `kill -9 of a writer on ${driver} loses no acknowledged event`,
    async () => {
      const target = await freshTarget(driver, server);
      try {
        const proc = spawn(process.execPath, [child, driver, target, "100"], {
          stdio: ["ignore", "pipe", "inherit"],
        });
        onTestFinished(() => {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
        });
        const acked = new Map<number, number>(); // i -> seq
        const killAt = 1000 + Math.floor(Math.random() * 100);
        const killed = new Promise<NodeJS.Signals | null>((resolve) =>
          proc.on("exit", (_c, s) => resolve(s)),
        );
        let afterKill = 0;
        for await (const line of createInterface({ input: proc.stdout })) {
          if (line === "ready") continue;
          const [seq, i] = line.split(" ").map(Number);
          if (proc.killed) afterKill++;
          acked.set(i as number, seq as number);
          // Mid-stream: 100 callers with appends in flight, after 1,000 acknowledgements and a
          // few more (not always at a batch's edge).
          if (acked.size === killAt) proc.kill("SIGKILL");
        }
        expect(await killed).toBe("SIGKILL");
        expect(acked.size).toBeGreaterThanOrEqual(killAt);
        const store = await open(driver, target); // PGlite: takes over the dead writer's lock, recovers
        try {
          const have = await stored(store);
          const lost = [...acked].filter(([i, seq]) => have.get(i) !== seq);
          expect(lost, `${lost.length} acknowledged events lost or renumbered`).toEqual([]);
          // Every timeline resumes: each acknowledged event is on its node's timeline, and each
          // node's current state is that of the newest event on it.
          const tl = await store.sql.query<{ event_seq: string }>("SELECT event_seq FROM timelines");
          const onTimeline = new Set(tl.map((r) => Number(r.event_seq)));
          expect([...acked.values()].filter((seq) => !onTimeline.has(seq))).toEqual([]);
          const stale = await store.sql.query(`SELECT n.id FROM nodes n
            JOIN LATERAL (SELECT state FROM timelines t WHERE t.node_id = n.id ORDER BY event_seq DESC LIMIT 1) last ON true
            WHERE n.state <> last.state`);
          expect(stale).toEqual([]);
          expect((await store.nodes()).length).toBe(100);
          console.log(
            `[fleet] kill -9 on ${driver}: ${acked.size} acknowledged (${afterKill} read after the kill), ${have.size} stored, 0 lost`,
          );
        } finally {
          await store.close();
        }
      } finally {
        removeTarget(driver, target);
      }
    },
    300_000, // PGlite's first open (initdb) in the child and its recovery at reopen, on a busy machine
  );
}

describe.skipIf(missing)("PostgreSQL crashed and restarted mid-ingest", () => {
  it("the writer waits, reconnects and loses nothing acknowledged; a subscriber catches up", async () => {
    const pg = server as TestPostgres;
    const url = await freshTarget("postgres", pg);
    const writer = await open("postgres", url);
    const reader = await open("postgres", url);
    const seen = new Set<number>();
    const stopSub = await reader.subscribe((events: EventRow[]) => {
      for (const e of events) if (e.type === "kill-test") seen.add(e.seq);
    });
    const acked = new Map<number, number>();
    let next = 0;
    let running = true;
    const failures: unknown[] = [];
    const callers = Array.from({ length: 50 }, async () => {
      while (running) {
        const i = next++;
        try {
          acked.set(i, await writer.append({ type: "kill-test", body: { i } }));
        } catch (e) {
          failures.push(e);
          return;
        }
      }
    });
    const until = async (n: number) => {
      while (acked.size < n && failures.length === 0) await new Promise((r) => setTimeout(r, 10));
    };
    try {
      await until(1000);
      await pg.crash(); // -m immediate: as if the server died, recovery from the WAL at start
      const atCrash = acked.size;
      await new Promise((r) => setTimeout(r, 1500)); // appends wait meanwhile
      const duringOutage = acked.size - atCrash;
      const t0 = Date.now();
      await pg.startServer();
      const started = Date.now() - t0;
      await until(atCrash + 1);
      const firstAck = Date.now() - t0;
      await until(atCrash + 1000);
      running = false;
      await Promise.all(callers);
      expect(failures).toEqual([]);
      const have = await stored(writer);
      const lost = [...acked].filter(([i, seq]) => have.get(i) !== seq);
      expect(lost).toEqual([]);
      expect(have.size).toBe(acked.size); // every append made was acknowledged exactly once
      const end = Date.now() + 20_000;
      while ([...acked.values()].some((s) => !seen.has(s)) && Date.now() < end)
        await new Promise((r) => setTimeout(r, 50));
      expect([...acked.values()].filter((s) => !seen.has(s))).toEqual([]);
      console.log(
        `[fleet] PostgreSQL restart: ${acked.size} acknowledged (${duringOutage} during the 1.5 s outage; server up again in ${started} ms, first ack after its start at ${firstAck} ms, 1,000 more at ${Date.now() - t0} ms), all stored once, all seen by the subscriber`,
      );
    } finally {
      running = false;
      await stopSub();
      await reader.close();
      await writer.close();
    }
  });
});
