// serve follows the region: ServeFleet.follow() gives the view of every node a committed store event
// touched, whoever wrote it (this serve, another rack's serve, the CLI's approval), so /v1/events
// carries each as a fleet-node event. On an embedded PGlite store here (its notifications are
// in-process); region.fleet.test.ts runs the same across two serves on PostgreSQL 15 through the page.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type FleetNode, ServeFleet } from "../../../src/app/fleet-serve.js";
import type { FleetStore } from "../../../src/fleet/store/index.js";

const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-follow-${process.pid}-`));
let fleet: ServeFleet;
let store: FleetStore;
const seen: FleetNode[] = [];
const last = (id: number) => seen.filter((n) => n.id === String(id)).at(-1);

beforeAll(async () => {
  fleet = await ServeFleet.start(
    { store: path.join(dir, "store"), rack: "a", source: "serve a" },
    (m) => {
      throw new Error(m);
    },
    true,
  );
  store = await fleet.store;
  await fleet.follow((n) => seen.push(n));
}, 60_000);
afterAll(async () => {
  await fleet.close();
  rmSync(dir, { recursive: true, force: true });
});

const WAIT = { timeout: 10_000 };
const mac = (i: number) => `52:54:00:ff:00:${i.toString(16).padStart(2, "0")}`;

it("another rack's discovery and an operator's approval arrive as the node's view", async () => {
  const r = await store.resolveNode(
    { uuid: null, serial: "S-B1", asset: null, macs: [mac(1)], complete: true },
    { rack: "b", source: "serve b" },
  );
  await expect
    .poll(() => last(r.node.id), WAIT)
    .toMatchObject({ rack: "b", approved: false, macs: [mac(1)] });
  await store.approve(r.node.id, "operator@10.0.0.9");
  await expect.poll(() => last(r.node.id)?.approved, WAIT).toBe(true);
  await store.hold(r.node.id, "operator", "RMA: bad DIMM", "operator@10.0.0.9");
  await expect.poll(() => last(r.node.id)?.state, WAIT).toBe("held");
});

it("forty nodes changing at once each arrive in their final state (coalesced; many at once read in one list)", async () => {
  const ids = await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      store
        .resolveNode(
          { uuid: null, serial: `S-A${i}`, asset: null, macs: [mac(16 + i)], complete: true },
          { rack: "a", source: "serve a" },
        )
        .then((x) => x.node.id),
    ),
  );
  await Promise.all(
    ids.map(async (id) => {
      for (const state of ["script", "kernel", "initrd"])
        await store.append({ type: "node-state", nodeId: id, state, source: "serve a" });
    }),
  );
  await expect.poll(() => ids.filter((id) => last(id)?.state === "initrd").length, WAIT).toBe(40);
  expect(ids.every((id) => last(id)?.rack === "a")).toBe(true);
});
