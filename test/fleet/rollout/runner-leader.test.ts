// Two rollout runners over one store (as two racks' serves on one PostgreSQL; here one PGlite): only
// the one that leads steps and powers on. The other's create, pause and resume go to the store and the
// leader takes them up; its onChange still sees the leader's changes. A leader that loses its lease
// stops deciding until it leads again, then resumes from the store. A save decided on a status the
// rollout no longer has is refused and writes nothing.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutRunner } from "../../../src/fleet/rollout/runner.js";
import type { RolloutView } from "../../../src/fleet/rollout/view.js";
import { type FleetStore, openPglite } from "../../../src/fleet/store/index.js";
import { RolloutStore, StaleRollout } from "../../../src/fleet/store/rollouts.js";
import { RecordingPower } from "./recording-power.js";

const dir = mkdtempSync(path.join(os.tmpdir(), `kvmstrap-leader-${process.pid}-`));
let store: FleetStore;
const ids: number[] = [];

beforeAll(async () => {
  store = await openPglite(dir);
  const rs = new RolloutStore(store);
  for (const i of [1, 2, 3]) {
    const { node } = await store.resolveNode(
      { serial: `SN-L${i}`, macs: [`52:54:00:00:10:0${i}`] },
      { rack: "r1" },
    );
    ids.push(node.id);
    await store.approve(node.id, "test");
    await rs.setPower(node.id, { driver: "libvirt", domain: `dom-${i}` });
  }
}, 120_000);

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const report = (id: number, state: string) =>
  store.append({ type: "node-state", nodeId: id, state, source: "pxe" });

describe("one deciding runner per store", () => {
  it("the follower's actions reach the store; only the leader powers on; a lost lease stops deciding", async () => {
    let leading = true;
    const pl = new RecordingPower();
    const pf = new RecordingPower();
    const followerViews: RolloutView[] = [];
    const leader = new RolloutRunner({ store, power: pl.port, source: "rollout@a", leads: () => leading });
    const follower = new RolloutRunner({
      store,
      power: pf.port,
      source: "rollout@b",
      leads: () => false,
      onChange: (v) => followerViews.push(v),
    });
    await leader.start();
    await follower.start();
    try {
      const created = await follower.create({
        canarySize: 1,
        waveSize: 2,
        maxInFlight: 2,
        maxInFlightPerRack: 2,
        failureThreshold: 0.5,
        powerOnIntervalMs: 0,
      });
      expect(created.state).toBe("canary");
      await until("the canary's power-on", async () => pl.calls.length === 1);
      const canary = pl.calls[0]?.nodeId as number;
      await until("the follower's mirror", async () => followerViews.some((v) => v.counts.inFlight === 1));

      const paused = await follower.act(created.id, "pause");
      expect(paused.state).toBe("canary-paused");
      expect((await leader.view(created.id))?.state).toBe("canary-paused");
      await follower.act(created.id, "resume");

      // The lease is lost: the canary verifies, and nobody decides on it.
      leading = false;
      await leader.idle(); // a step begun while leading ends as it began
      await report(canary, "verified");
      await sleep(800);
      expect(pl.calls).toHaveLength(1);
      expect((await leader.view(created.id))?.state).toBe("canary");

      // Leading again (serve steps when it takes the lease): the rollout goes on from the store.
      leading = true;
      await leader.step();
      await until("the wave's power-ons", async () => pl.calls.length === 3);
      for (const id of ids.filter((x) => x !== canary)) await report(id, "verified");
      await until("done", async () => (await leader.view(created.id))?.state === "done");
      expect(pf.calls).toHaveLength(0);
      expect(pl.calls.map((c) => c.nodeId).sort()).toEqual([...ids].sort());
    } finally {
      await follower.stop();
      await leader.stop();
    }
  });

  it("a save decided on a version of the rollout that is gone is refused and writes nothing", async () => {
    const rs = new RolloutStore(store, "test");
    const id = await rs.create("stale", {}, ids, Date.now());
    const seen = (await rs.get(id))?.version;
    await rs.save({
      id,
      version: seen,
      status: "canary",
      events: [{ event: "start", status: "canary", wave: 0 }],
    });
    const before = (await rs.events(id)).length;
    // Decided on what was seen before the start: refused, though it asks for no new status.
    await expect(
      rs.save({ id, version: seen, wave: 3, events: [{ event: "wave-done", status: "canary", wave: 3 }] }),
    ).rejects.toBeInstanceOf(StaleRollout);
    expect(await rs.get(id)).toMatchObject({ status: "canary", wave: 0 });
    expect(await rs.events(id)).toHaveLength(before);
    await rs.save({ id, version: (await rs.get(id))?.version, status: "aborted" });
    expect((await rs.get(id))?.status).toBe("aborted");
  });
});
