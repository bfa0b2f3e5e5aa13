// The rollout decision over random worlds (fast-check): random fleets (racks, sizes, unapproved and
// held nodes), random limits, and random sequences of node outcomes, delays and operator actions. After
// every decision, whatever happened before: the in-flight limits in total and per rack hold, two
// power-ons in one rack are never closer than the stagger interval, only approved waiting nodes are
// chosen, nothing is chosen unless the rollout runs, no wave after the canary starts before every
// canary node verified, a wave starts only once the one before ended, and a halt stops power-ons until
// a resume. And the decision is deterministic, and a fleet without failures ends "done".
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { next, type RolloutConfig } from "../../../src/fleet/rollout/decide.js";
import { ENDED, IN_FLIGHT } from "../../../src/fleet/rollout/states.js";
import { ADVANCE, makeNodes, World } from "./sim.js";

const config = fc.record({
  canarySize: fc.integer({ min: 0, max: 4 }),
  waveSize: fc.integer({ min: 1, max: 12 }),
  maxInFlight: fc.integer({ min: 1, max: 10 }),
  maxInFlightPerRack: fc.integer({ min: 1, max: 5 }),
  failureThreshold: fc.constantFrom(0, 0.1, 0.25, 0.5, 1),
  powerOnIntervalMs: fc.constantFrom(0, 0, 1000, 5000),
}) satisfies fc.Arbitrary<RolloutConfig>;

const fleet = fc.record({
  racks: fc.integer({ min: 1, max: 4 }),
  perRack: fc.integer({ min: 1, max: 10 }),
  unapproved: fc.integer({ min: 0, max: 9 }),
  held: fc.integer({ min: 0, max: 9 }),
});

const step = fc.record({
  dt: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constantFrom(999, 1000, 4999, 5000)),
  /** Per in-flight node: 0-99; below failPct it fails, below 60 it advances, else nothing happens. */
  rolls: fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 20 }),
  op: fc.constantFrom("none", "none", "none", "none", "none", "pause", "resume", "abort", "rearm", "hold"),
});

describe("the rollout decision never breaks its limits (property)", () => {
  it("holds every invariant over random fleets, limits and outcomes", () => {
    fc.assert(
      fc.property(
        config,
        fleet,
        fc.integer({ min: 0, max: 30 }),
        fc.array(step, { minLength: 1, maxLength: 120 }),
        (c, f, failPct, steps) => {
          const nodes = makeNodes(f.racks, f.perRack, {
            unapproved: (i) => f.unapproved > 0 && i % (f.unapproved + 3) === 1,
            held: (i) => f.held > 0 && i % (f.held + 4) === 2,
          });
          const never = new Set(nodes.filter((n) => !n.approved || n.state === "held").map((n) => n.id));
          const w = new World(c, nodes);
          w.operator("start");
          const lastPower = new Map<string, number>();
          let halted = false;
          for (const s of steps) {
            w.now += s.dt;
            if (s.op === "pause" || s.op === "resume" || s.op === "abort") {
              if (s.op === "resume" && w.operator("resume")) halted = false;
              else if (s.op !== "resume") w.operator(s.op);
            }
            // Re-arming or holding a failed node is what an operator does after a halt.
            const failed = w.list().find((n) => n.state === "failed");
            if (failed && (s.op === "rearm" || s.op === "hold")) {
              w.node(failed.id, s.op);
              if (s.op === "hold") never.add(failed.id);
            }
            const snapshot = JSON.stringify(w.list());
            const stateBefore = w.rollout;
            const again = next(stateBefore, w.list(), w.now);
            const { before, decision: d } = w.step();
            // Deterministic: the same input gives the same decision.
            expect(next(stateBefore, JSON.parse(snapshot), w.now)).toEqual(again);
            expect(d).toEqual(again);

            if (d.events.includes("threshold")) halted = true;
            if (d.powerOn.length) {
              expect(["canary", "running"]).toContain(d.state);
              expect(halted).toBe(false);
              expect(["canary", "canary-paused", "running", "paused", "pending"]).toContain(before);
            }
            for (const id of d.powerOn) {
              expect(never.has(id), `${id} is held or unapproved`).toBe(false);
              const n = w.nodes.get(id);
              const prev = lastPower.get(n?.rack ?? "");
              if (prev !== undefined && c.powerOnIntervalMs > 0)
                expect(w.now - prev).toBeGreaterThanOrEqual(c.powerOnIntervalMs);
              lastPower.set(n?.rack ?? "", w.now);
            }
            if (c.powerOnIntervalMs > 0) {
              const racks = d.powerOn.map((id) => w.nodes.get(id)?.rack);
              expect(new Set(racks).size).toBe(racks.length);
            }
            // A running rollout is never over its threshold: the wave's failures halt it first.
            const members = w.list().filter((n) => n.wave === d.wave);
            const failedNow = members.filter((n) => n.state === "failed").length;
            if (d.state === "canary") expect(failedNow).toBe(0);
            if (d.state === "running") {
              const waitingNow = w.list().filter((n) => n.approved && n.state === "waiting").length;
              const size = Math.min(c.waveSize, members.length + waitingNow);
              if (size > 0) expect(failedNow / size).toBeLessThanOrEqual(c.failureThreshold);
            }
            // Limits, counted on the world after the power-ons.
            const flying = w.inFlight();
            expect(flying.length).toBeLessThanOrEqual(Math.max(c.maxInFlight, 0));
            const perRack = new Map<string, number>();
            for (const n of flying) perRack.set(n.rack, (perRack.get(n.rack) ?? 0) + 1);
            for (const v of perRack.values()) expect(v).toBeLessThanOrEqual(c.maxInFlightPerRack);
            // Waves: the canary's size, each wave's size, and one wave at a time.
            const waves = new Map<number, number>();
            for (const n of w.list()) if (n.wave !== null) waves.set(n.wave, (waves.get(n.wave) ?? 0) + 1);
            expect(waves.get(0) ?? 0).toBeLessThanOrEqual(c.canarySize);
            for (const [k, v] of waves) if (k > 0) expect(v).toBeLessThanOrEqual(c.waveSize);
            for (const id of d.powerOn) {
              const wave = w.nodes.get(id)?.wave ?? 0;
              if (wave >= 1)
                for (const n of w.list())
                  if (n.wave === 0)
                    expect(n.state, `canary ${n.id} when ${id} went`).toMatch(/verified|held/);
              for (const n of w.list())
                if (n.wave !== null && n.wave < wave)
                  expect(ENDED.has(n.state), `${n.id} of wave ${n.wave}`).toBe(true);
            }
            // Outcomes for the nodes in flight.
            let k = 0;
            for (const n of w.inFlight().sort((a, b) => (a.id < b.id ? -1 : 1))) {
              const roll = s.rolls[k++ % s.rolls.length] as number;
              if (roll < failPct) w.node(n.id, "failed");
              else if (roll < 60) w.node(n.id, ADVANCE[n.state] ?? "verified");
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a fleet without failures and without operator actions ends done, every eligible node verified", () => {
    fc.assert(
      fc.property(config, fleet, (c, f) => {
        const nodes = makeNodes(f.racks, f.perRack, {
          unapproved: (i) => f.unapproved > 0 && i % (f.unapproved + 3) === 1,
        });
        const w = new World(c, nodes);
        w.operator("start");
        for (let i = 0; i < 10_000 && w.rollout.state !== "done"; i++) {
          w.step();
          for (const n of w.inFlight()) w.node(n.id, ADVANCE[n.state] ?? "verified");
          w.now += 1000;
        }
        expect(w.rollout.state).toBe("done");
        for (const n of w.list()) expect(n.state).toBe(n.approved ? "verified" : "waiting");
        expect(w.list().filter((n) => IN_FLIGHT.has(n.state))).toEqual([]);
      }),
      { numRuns: 200 },
    );
  });
});
