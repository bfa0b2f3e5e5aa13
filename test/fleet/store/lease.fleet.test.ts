// The store's lease (lease.ts) on a test-owned PostgreSQL 15: of two stores sharing it, one holds
// the lease and the other does not; when the holder's session is killed by the server (what a
// dropped connection or a dead process amounts to), the holder says it lost it at once and the other
// takes it within its retry time; a closed lease is released for the other. On PGlite it is held.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FleetStore, openPglite, openPostgres } from "../../../src/fleet/store/index.js";
import { postgresMissing, TestPostgres } from "./postgres-server.js";

const missing = postgresMissing();
let server: TestPostgres | undefined;
const KEY = 99_001;

beforeAll(async () => {
  if (!missing) server = await TestPostgres.start("lease");
}, 120_000);
afterAll(async () => {
  await server?.stop();
});

const until = async (what: string, ok: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

describe("the store's lease", () => {
  it.skipIf(missing)(
    "one holder at a time on PostgreSQL; a killed session hands it over",
    async () => {
      const url = server?.url() as string;
      const s1: FleetStore = await openPostgres(url);
      const s2: FleetStore = await openPostgres(url);
      const l1 = s1.lease(KEY, { retryMs: 200 });
      await until("the first lease", () => l1.held, 10_000);
      const l2 = s2.lease(KEY, { retryMs: 200 });
      const seen: boolean[] = [];
      l1.onChange((h) => seen.push(h));
      await new Promise((r) => setTimeout(r, 1000)); // five tries of the second
      expect([l1.held, l2.held]).toEqual([true, false]);

      // The server ends the holder's session: it loses the lease, the other takes it.
      const killed = await s2.sql.query<{ n: number }>(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_locks
       WHERE locktype = 'advisory' AND objid = $1 AND granted`,
        [KEY],
      );
      expect(killed[0]?.n).toBe(1);
      const t0 = Date.now();
      await until("the takeover", () => l2.held, 5000);
      console.log(`lease taken over ${Date.now() - t0} ms after the holder's session ended (retry 200 ms)`);
      expect(seen[0]).toBe(false);
      await new Promise((r) => setTimeout(r, 600)); // the first tries again, and must not get it
      expect([l1.held, l2.held]).toEqual([false, true]);

      // Closing gives it up.
      await l2.close();
      await until("the first takes it back", () => l1.held, 5000);
      await l1.close();
      await s1.close();
      await s2.close();
    },
    60_000,
  );

  it("is always held on PGlite (one process)", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-lease-${process.pid}-`));
    const s = await openPglite(dir);
    try {
      const l = s.lease(KEY);
      expect(l.held).toBe(true);
      await l.close();
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
