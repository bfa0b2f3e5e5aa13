// The rollout runner over a real PGlite store: node outcomes arrive as store events (as the PXE side
// and the agent write them), power goes through a recording double. One store serves the whole file
// (PGlite's first open takes seconds here); each test runs its own rollout after the last ended.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutRefused, RolloutRunner, type RunnerOptions } from "../../../src/fleet/rollout/runner.js";
import type { RolloutView } from "../../../src/fleet/rollout/view.js";
import { type FleetStore, openPglite } from "../../../src/fleet/store/index.js";
import { RolloutStore } from "../../../src/fleet/store/rollouts.js";
import { RecordingPower } from "./recording-power.js";

const dir = mkdtempSync(path.join(os.tmpdir(), `kvmstrap-runner-${process.pid}-`));
let store: FleetStore;
/** Node ids by name: a1..a3 in rack r1, b1..b2 in rack r2. */
const ids = new Map<string, number>();
const nameOf = (id: number | string) => [...ids].find(([, v]) => v === Number(id))?.[0] ?? `?${id}`;

beforeAll(async () => {
  store = await openPglite(dir);
  const rs = new RolloutStore(store);
  const layout: [string, string][] = [
    ["a1", "r1"],
    ["a2", "r1"],
    ["a3", "r1"],
    ["b1", "r2"],
    ["b2", "r2"],
  ];
  for (const [i, [name, rack]] of layout.entries()) {
    const { node } = await store.resolveNode(
      { serial: `SN-${name}`, macs: [`52:54:00:00:00:${String(i + 1).padStart(2, "0")}`] },
      { rack },
    );
    ids.set(name, node.id);
    await store.approve(node.id, "test");
    await rs.setPower(node.id, { driver: "libvirt", domain: `dom-${name}` });
  }
}, 120_000);

afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const params = {
  canarySize: 1,
  waveSize: 2,
  maxInFlight: 2,
  maxInFlightPerRack: 1,
  failureThreshold: 0.4,
  powerOnIntervalMs: 0,
};

/** What the PXE side would append as a node goes through its states. */
const report = (id: string | number, state: string) =>
  store.append({ type: "node-state", nodeId: Number(id), state, source: "pxe" });

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function runner(power: RecordingPower, o: Partial<RunnerOptions> = {}) {
  const views: RolloutView[] = [];
  const r = new RolloutRunner({ store, power: power.port, onChange: (v) => views.push(v), ...o });
  return { r, views };
}

/** Every view the runner published kept the in-flight limits. */
function limitsHeld(views: RolloutView[], maxInFlight: number, perRack: number) {
  expect(views.length).toBeGreaterThan(0);
  for (const v of views) {
    expect(v.counts.inFlight).toBeLessThanOrEqual(maxInFlight);
    const racks = new Map<string, number>();
    for (const n of v.nodes)
      if (["powering-on", "booting", "installing", "installed"].includes(n.state))
        racks.set(n.rack ?? "", (racks.get(n.rack ?? "") ?? 0) + 1);
    for (const c of racks.values()) expect(c).toBeLessThanOrEqual(perRack);
  }
}

describe("the rollout runner over a PGlite store", () => {
  it("runs a canary of 1, then waves of 2, within 2 in flight and 1 per rack, staggered per rack", async () => {
    const power = new RecordingPower();
    const { r, views } = runner(power);
    await r.start();
    const interval = 400;
    const v0 = await r.create({ ...params, name: "waves", powerOnIntervalMs: interval });
    expect(v0.state).toBe("canary");
    await r.idle();
    expect(power.ons().map((c) => nameOf(c.nodeId))).toEqual(["a1"]); // the canary alone
    // The canary is not passed until verified: nothing else is powered on meanwhile.
    await report(ids.get("a1") as number, "installing");
    await r.idle();
    expect(power.ons()).toHaveLength(1);
    // Every node the runner powered on goes on to verified.
    const done = await until("the rollout to finish", async () => {
      await r.idle();
      const v = await r.view(v0.id);
      for (const n of v?.nodes ?? [])
        if (n.state === "booting" || n.state === "installing") await report(n.id, "verified");
      return v?.state === "done" && v;
    });
    await r.stop();
    expect(done.counts).toEqual({ waiting: 0, inFlight: 0, verified: 5, failed: 0, held: 0 });
    const ons = power.ons();
    expect(ons.map((c) => nameOf(c.nodeId)).sort()).toEqual(["a1", "a2", "a3", "b1", "b2"]); // each once
    expect(ons.map((c) => c.domain)).toContain("dom-b2"); // the node's own power settings
    // Waves: a1 (canary), then one node per rack at a time.
    expect(done.nodes.map((n) => [nameOf(n.id), n.wave])).toEqual([
      ["a1", 0],
      ["a2", 1],
      ["a3", 2],
      ["b1", 1],
      ["b2", 2],
    ]);
    limitsHeld(views, 2, 1);
    // Staggered: two power-ons in one rack at least the interval apart.
    for (const rack of ["a", "b"]) {
      const times = ons.filter((c) => nameOf(c.nodeId).startsWith(rack)).map((c) => c.at);
      for (let i = 1; i < times.length; i++)
        expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThanOrEqual(interval - 5);
    }
    const events = await store.eventsSince(0, 10_000);
    const moves = events.filter(
      (e) => e.type === "rollout-node" && (e.body as { rollout: number }).rollout === v0.id,
    );
    expect(moves.length).toBeGreaterThanOrEqual(10); // power-on and powered for each, at least
    expect(JSON.stringify(events)).not.toContain("dom-"); // power settings never in an event
  }, 60_000);

  it("halts a wave past its failure threshold; resume is refused until the failed node is held", async () => {
    const power = new RecordingPower();
    const { r } = runner(power);
    await r.start();
    const b1 = ids.get("b1") as number;
    power.failing.set(b1, "BMC says no");
    const v0 = await r.create({ ...params, name: "threshold" });
    await until("the canary to pass and wave 1 to halt", async () => {
      await r.idle();
      const v = await r.view(v0.id);
      for (const n of v?.nodes ?? []) if (n.state === "booting") await report(n.id, "verified");
      return v?.state === "halted" && v;
    });
    const halted = await r.view(v0.id);
    expect(halted?.nodes.find((n) => n.id === String(b1))).toMatchObject({
      state: "failed",
      wave: 1,
      reason: expect.stringContaining("BMC says no"),
    });
    const before = power.ons().length;
    await expect(r.act(v0.id, "resume")).rejects.toThrow(/re-arm or hold/);
    await expect(r.act(v0.id, "start")).rejects.toBeInstanceOf(RolloutRefused);
    await store.hold(b1, "operator", "bad BMC", "test");
    await until("the failed node to be held", async () => {
      await r.idle();
      return (await r.view(v0.id))?.nodes.find((n) => n.id === String(b1))?.state === "held";
    });
    const resumed = await r.act(v0.id, "resume");
    expect(resumed.state).toBe("running");
    await r.idle();
    expect(power.ons().length).toBeGreaterThan(before); // the next wave went on
    expect(power.ons().filter((c) => c.nodeId === b1)).toHaveLength(1); // the held node never again
    await r.act(v0.id, "abort");
    await r.stop();
    await store.release(b1, "test");
  }, 60_000);

  it("fails an in-flight node whose answer is held (a failed check counts against its wave); an operator's hold does not", async () => {
    const power = new RecordingPower();
    const { r } = runner(power);
    await r.start();
    const v0 = await r.create({ ...params, name: "answer-hold", canarySize: 2, maxInFlightPerRack: 2 });
    const canary = await until("the canary of two in flight", async () => {
      await r.idle();
      const v = await r.view(v0.id);
      return v && v.counts.inFlight === 2 && v;
    });
    const flying = (s: string) => ["powering-on", "booting", "installing", "installed"].includes(s);
    const [first, second] = canary.nodes.filter((n) => flying(n.state)).map((n) => Number(n.id));
    // The operator holds one while it installs: it stays in flight (the hold stops its next install).
    await store.hold(second as number, "operator", "look at it later", "test");
    // The other's answer fails its check when it asks for it (serve's fleet side holds it so).
    await store.hold(first as number, "answer", "answer held: network.bridges[0]: no NIC matches", "serve");
    const halted = await until("the canary to halt", async () => {
      await r.idle();
      const v = await r.view(v0.id);
      return v?.state === "canary-halted" && v;
    });
    expect(halted.events.map((e) => e.event)).toEqual(expect.arrayContaining(["failed", "threshold"]));
    expect(halted.events.find((e) => e.event === "failed")?.detail).toContain(`node ${first} failed, wave 0`);
    // It failed in its wave (which halted the canary), then its open hold keeps it held.
    expect(halted.nodes.find((n) => n.id === String(first))).toMatchObject({
      state: expect.stringMatching(/^(failed|held)$/),
      wave: 0,
      reason: expect.stringContaining("no NIC matches"),
    });
    expect(flying(halted.nodes.find((n) => n.id === String(second))?.state ?? "")).toBe(true);
    await r.act(v0.id, "abort");
    await r.stop();
    await store.release(first as number, "test");
    await store.release(second as number, "test");
  }, 60_000);

  it("pause stops power-ons until resume; abort ends it and refuses everything after", async () => {
    const power = new RecordingPower();
    const { r } = runner(power);
    await r.start();
    const v0 = await r.create({ ...params, name: "pause" });
    await r.idle();
    expect(power.ons()).toHaveLength(1);
    expect((await r.act(v0.id, "pause")).state).toBe("canary-paused");
    await expect(r.act(v0.id, "pause")).rejects.toThrow(/canary-paused: it cannot pause/);
    await report(power.ons()[0]?.nodeId as number, "verified");
    await r.idle();
    await r.step();
    await r.idle();
    expect(power.ons()).toHaveLength(1); // paused: the canary passing powers nobody on
    expect((await r.view(v0.id))?.why).toMatch(/canary-paused/);
    const resumed = await r.act(v0.id, "resume");
    await r.idle();
    expect((await r.view(v0.id))?.state).toBe("running");
    expect(resumed.id).toBe(v0.id);
    expect(power.ons()).toHaveLength(3);
    expect((await r.act(v0.id, "abort")).state).toBe("aborted");
    for (const c of power.ons()) await report(c.nodeId, "verified");
    await r.idle();
    await r.step();
    await r.idle();
    expect(power.ons()).toHaveLength(3);
    await expect(r.act(v0.id, "resume")).rejects.toThrow(/aborted: it cannot resume/);
    await r.stop();
  }, 60_000);

  it("fails a node that stays in one in-flight state past its timeout", async () => {
    const power = new RecordingPower();
    const { r } = runner(power, { timeouts: { booting: 300 } });
    await r.start();
    const v0 = await r.create({ ...params, name: "timeout", failureThreshold: 0 });
    const v = await until("the canary to time out", async () => {
      const v = await r.view(v0.id);
      return v?.state === "canary-halted" && v;
    });
    expect(v.nodes.find((n) => n.state === "failed")?.reason).toMatch(/no progress in booting/);
    await r.act(v0.id, "abort");
    await r.stop();
  }, 60_000);

  it("resumes after a restart mid-wave: nobody powered on twice, and it finishes", async () => {
    const first = new RecordingPower();
    const a = runner(first);
    await a.r.start();
    const v0 = await a.r.create({ ...params, name: "restart" });
    await until("wave 1 in flight", async () => {
      await a.r.idle();
      const v = await a.r.view(v0.id);
      for (const n of v?.nodes ?? [])
        if (n.wave === 0 && n.state === "booting") await report(n.id, "verified");
      return v?.wave === 1 && v.counts.inFlight === 2 && first.ons().length === 3 && v;
    });
    await a.r.stop();
    await store.close(); // the server dies; a new one opens the same directory
    store = await openPglite(dir);
    const second = new RecordingPower();
    const b = runner(second);
    await b.r.start();
    await b.r.idle();
    expect(second.ons()).toEqual([]); // the in-flight wave stays in flight
    const resumed = await b.r.view(v0.id);
    expect(resumed?.counts.inFlight).toBe(2);
    const done = await until("the rollout to finish", async () => {
      await b.r.idle();
      const v = await b.r.view(v0.id);
      for (const n of v?.nodes ?? [])
        if (n.state === "booting" || n.state === "powering-on") await report(n.id, "verified");
      return v?.state === "done" && v;
    });
    await b.r.stop();
    const all = [...first.ons(), ...second.ons()].map((c) => nameOf(c.nodeId)).sort();
    expect(all).toEqual(["a1", "a2", "a3", "b1", "b2"]);
    expect(done.counts.verified).toBe(5);
  }, 120_000);
});
