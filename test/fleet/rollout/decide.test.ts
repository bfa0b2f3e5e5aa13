// The rollout decision, case by case: the canary spreads over racks and must fully succeed, a wave
// halts at its failure threshold, the in-flight limits and the stagger interval, held and unapproved
// nodes, pause, resume and abort.
import { describe, expect, it } from "vitest";
import { next, type RolloutConfig } from "../../../src/fleet/rollout/decide.js";
import { ADVANCE, makeNodes, World } from "./sim.js";

const base: RolloutConfig = {
  canarySize: 2,
  waveSize: 4,
  maxInFlight: 10,
  maxInFlightPerRack: 10,
  failureThreshold: 0.25,
  powerOnIntervalMs: 0,
};

/** Moves every in-flight node to verified. */
function succeed(w: World, ids = w.inFlight().map((n) => n.id)) {
  for (const id of ids)
    while (w.nodes.get(id)?.state !== "verified")
      w.node(id, ADVANCE[w.nodes.get(id)?.state ?? "installed"] ?? "verified");
}

describe("rollout decision", () => {
  it("runs a canary spread over racks, and starts wave 1 only once every canary node verified", () => {
    const w = new World(base, makeNodes(2, 5));
    expect(next(w.rollout, w.list(), 0).powerOn).toEqual([]); // pending: not started
    w.operator("start");
    const first = w.step().decision;
    expect(first).toMatchObject({ state: "canary", wave: 0, powerOn: ["r0-n0000", "r1-n0000"] });
    expect(w.step().decision.powerOn).toEqual([]); // the canary is full
    succeed(w, ["r0-n0000"]);
    expect(w.step().decision).toMatchObject({ state: "canary", powerOn: [] });
    succeed(w, ["r1-n0000"]);
    const d = w.step().decision;
    expect(d).toMatchObject({ events: ["canary-passed"], state: "running", wave: 1 });
    expect(d.powerOn).toEqual(["r0-n0001", "r1-n0001", "r0-n0002", "r1-n0002"]);
  });

  it("halts on one failed canary node; resume halts again until the operator re-arms or holds it", () => {
    const w = new World(base, makeNodes(1, 6));
    w.operator("start");
    w.step();
    w.node("r0-n0000", "failed");
    expect(w.step().decision).toMatchObject({ events: ["threshold"], state: "canary-halted", powerOn: [] });
    expect(w.step().decision.powerOn).toEqual([]);
    w.operator("resume");
    expect(w.step().decision).toMatchObject({ events: ["threshold"], state: "canary-halted" });
    w.node("r0-n0000", "rearm");
    w.operator("resume");
    // The re-armed node waits again and is the first candidate; r0-n0001 is still in flight.
    expect(w.step().decision).toMatchObject({ state: "canary", powerOn: ["r0-n0000"] });
  });

  it("halts a wave whose failures pass the threshold (1 of 4 at 0.25 is fine, 2 of 4 is not)", () => {
    const w = new World({ ...base, canarySize: 0 }, makeNodes(1, 12));
    w.operator("start");
    const d = w.step().decision;
    expect(d).toMatchObject({ events: ["canary-passed"], state: "running", wave: 1 });
    expect(d.powerOn).toHaveLength(4);
    w.node("r0-n0000", "failed");
    succeed(w, ["r0-n0001", "r0-n0002"]);
    expect(w.step().decision).toMatchObject({ state: "running", events: [], powerOn: [] });
    w.node("r0-n0003", "failed");
    expect(w.step().decision).toMatchObject({ state: "halted", events: ["threshold"], powerOn: [] });
  });

  it("moves to the next wave when one ends within its threshold", () => {
    const w = new World({ ...base, canarySize: 0, waveSize: 2 }, makeNodes(1, 5));
    w.operator("start");
    expect(w.step().decision.powerOn).toEqual(["r0-n0000", "r0-n0001"]);
    succeed(w);
    expect(w.step().decision).toMatchObject({
      events: ["wave-done"],
      wave: 2,
      powerOn: ["r0-n0002", "r0-n0003"],
    });
    succeed(w);
    expect(w.step().decision).toMatchObject({ events: ["wave-done"], wave: 3, powerOn: ["r0-n0004"] });
    succeed(w);
    expect(w.step().decision).toMatchObject({
      events: ["wave-done", "finished"],
      state: "done",
      powerOn: [],
    });
  });

  it("keeps the in-flight maximum per rack and in total", () => {
    const c = { ...base, canarySize: 0, waveSize: 20 };
    const perRack = new World({ ...c, maxInFlightPerRack: 1 }, makeNodes(3, 5));
    perRack.operator("start");
    const d = perRack.step().decision;
    expect(d.powerOn).toEqual(["r0-n0000", "r1-n0000", "r2-n0000"]);
    expect(d.why).toContain("rack r0: 1 in flight (max 1)");
    const total = new World({ ...c, maxInFlight: 4, maxInFlightPerRack: 2 }, makeNodes(3, 5));
    total.operator("start");
    expect(total.step().decision.powerOn).toEqual(["r0-n0000", "r1-n0000", "r2-n0000", "r0-n0001"]);
    succeed(total, ["r1-n0000"]);
    expect(total.step().decision.powerOn).toEqual(["r1-n0001"]);
  });

  it("staggers power-ons: one per rack per interval, and says when to ask again", () => {
    const w = new World({ ...base, canarySize: 0, powerOnIntervalMs: 10_000 }, makeNodes(2, 4));
    w.operator("start");
    w.now = 1_000;
    expect(w.step().decision.powerOn).toEqual(["r0-n0000", "r1-n0000"]);
    w.now = 6_000;
    const d = w.step().decision;
    expect(d.powerOn).toEqual([]);
    expect(d.wakeAt).toBe(11_000);
    w.now = 11_000;
    expect(w.step().decision.powerOn).toEqual(["r0-n0001", "r1-n0001"]);
  });

  it("never chooses held or unapproved nodes; a fleet of only those is done at once", () => {
    const nodes = makeNodes(1, 6, { unapproved: (i) => i === 0, held: (i) => i === 1 });
    const w = new World({ ...base, canarySize: 3 }, nodes);
    w.operator("start");
    expect(w.step().decision.powerOn).toEqual(["r0-n0002", "r0-n0003", "r0-n0004"]);
    const none = new World(base, makeNodes(1, 2, { unapproved: () => true }));
    none.operator("start");
    expect(none.step().decision).toMatchObject({
      state: "done",
      powerOn: [],
      events: ["canary-passed", "finished"],
    });
  });

  it("powers nothing on while paused, resumes where it was, and stays aborted", () => {
    const w = new World({ ...base, canarySize: 0, waveSize: 2 }, makeNodes(1, 6));
    w.operator("start");
    w.step();
    w.operator("pause");
    succeed(w);
    expect(w.step().decision).toMatchObject({ state: "paused", powerOn: [] });
    w.operator("resume");
    expect(w.step().decision).toMatchObject({
      state: "running",
      events: ["wave-done"],
      powerOn: ["r0-n0002", "r0-n0003"],
    });
    expect(w.operator("abort")).toBe(true);
    expect(w.operator("resume")).toBe(false);
    succeed(w);
    expect(w.step().decision).toMatchObject({
      state: "aborted",
      powerOn: [],
      why: ["rollout aborted: nothing is powered on"],
    });
  });
});
