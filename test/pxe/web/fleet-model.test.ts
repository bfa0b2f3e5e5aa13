// The dashboard's fleet model (src/pxe/web/fleet.ts), pure: the waiting-for-approval group, racks
// with counts by state, events replacing nodes and the rollout, the rollout buttons against the real
// transition table, and a node's last failure from its timeline when the server sends none.
import { describe, expect, expectTypeOf, it } from "vitest";
import { ROLLOUT_STATES, ROLLOUT_TRANSITIONS } from "../../../src/fleet/rollout/states.js";
import type { RolloutView } from "../../../src/fleet/rollout/view.js";
import {
  type FleetEvent,
  type FleetNode,
  type FleetNodeDetail,
  FleetState,
  fleetStateLabel,
  lastFailure,
  type Rollout,
  rolloutAllows,
  rolloutNodesInOrder,
} from "../../../src/pxe/web/fleet.js";

const node = (id: number, o: Partial<FleetNode> = {}): FleetNode => ({
  id: String(id),
  name: `n${id}`,
  rack: "r01",
  macs: [`52:54:00:00:00:${String(id).padStart(2, "0")}`],
  uuid: null,
  serial: null,
  assetTag: null,
  state: "discovered",
  approved: true,
  held: false,
  holds: [],
  lastEvent: null,
  answer: "ready",
  ...o,
});
const rollout = (id: number, state: string, nodes: Rollout["nodes"] = []): Rollout => ({
  id: String(id),
  name: `ro${id}`,
  state,
  params: {},
  wave: 1,
  nodes,
  counts: { waiting: 0, inFlight: 0, verified: 0, failed: 0, held: 0 },
  why: null,
  events: [],
});

describe("the dashboard's fleet model", () => {
  it("groups by rack with counts by state; unapproved nodes wait apart; events replace nodes", () => {
    const s = new FleetState();
    s.load(
      [
        node(1, { state: "installing" }),
        node(2, { approved: false }),
        node(3, {
          rack: "r02",
          state: "held",
          held: true,
          holds: [{ source: "operator", reason: "x", since: "" }],
        }),
        node(4, { rack: null }),
        node(10, { rack: "r10", state: "verified" }),
      ],
      null,
    );
    expect(s.waiting().map((n) => n.name)).toEqual(["n2"]);
    expect(s.racks()).toEqual([
      {
        rack: "r01",
        total: 2,
        counts: [
          ["installing", 1],
          ["waiting for approval", 1],
        ],
        waiting: 1,
        held: 0,
      },
      { rack: "r02", total: 1, counts: [["held", 1]], waiting: 0, held: 1 },
      { rack: "r10", total: 1, counts: [["verified", 1]], waiting: 0, held: 0 },
      { rack: "(no rack)", total: 1, counts: [["discovered", 1]], waiting: 0, held: 0 },
    ]);
    expect(fleetStateLabel(s.nodes.get("3") as FleetNode)).toBe("HELD");
    expect(fleetStateLabel(s.nodes.get("2") as FleetNode)).toBe("waiting for approval (discovered)");
    expect(s.apply({ type: "fleet-node", node: node(2, { approved: true }) })).toBe("2");
    expect(s.waiting()).toEqual([]);
    expect(s.apply({ type: "fleet-node", node: node(5, { rack: "r02", approved: false }) })).toBe("5");
    expect(s.racks().find((r) => r.rack === "r02")?.waiting).toBe(1);
  });

  it("follows the rollout; a late event of an ended older rollout does not replace an active one", () => {
    const s = new FleetState();
    s.load([node(1)], rollout(1, "done"));
    expect(
      s.apply({
        type: "rollout",
        rollout: rollout(2, "canary", [
          { id: "1", name: "n1", rack: "r01", state: "booting", wave: 0, reason: null },
        ]),
      }),
    ).toBe("rollout");
    expect(s.rolloutState("1")?.state).toBe("booting");
    expect(s.apply({ type: "rollout", rollout: rollout(1, "aborted") })).toBeUndefined();
    expect(s.rollout?.id).toBe("2");
  });

  it("takes the rollout the server sends (the runner's RolloutView; checked by npm run typecheck)", () => {
    expectTypeOf<RolloutView>().toExtend<Rollout>();
    expectTypeOf<{ type: "rollout"; rollout: RolloutView }>().toExtend<FleetEvent>();
  });

  it("offers pause, resume and abort exactly where the rollout's transition table takes them", () => {
    for (const st of ROLLOUT_STATES)
      for (const a of ["pause", "resume", "abort"] as const)
        expect(rolloutAllows(st, a), `${st} ${a}`).toBe(ROLLOUT_TRANSITIONS[st][a] !== undefined);
    expect(rolloutAllows("running", "pause")).toBe(true);
    expect(rolloutAllows("paused", "pause")).toBe(false);
    expect(rolloutAllows("no-such-state", "abort")).toBe(false);
  });

  it("lists a rollout's failed and in-flight nodes first", () => {
    const r = rollout(1, "running", [
      { id: "1", name: "a", rack: null, state: "verified", wave: 0, reason: null },
      { id: "2", name: "b", rack: null, state: "waiting", wave: null, reason: null },
      { id: "3", name: "c", rack: null, state: "installing", wave: 1, reason: null },
      { id: "4", name: "d", rack: null, state: "failed", wave: 1, reason: "disk busy" },
    ]);
    expect(rolloutNodesInOrder(r).map((n) => n.name)).toEqual(["d", "c", "b", "a"]);
  });

  it("a node's last failure: the server's with its log, else the timeline's last 'failed' and the state before", () => {
    const d: FleetNodeDetail = {
      ...node(1, { state: "failed" }),
      timeline: [
        { time: "2026-12-06T00:00:00Z", state: "discovered", detail: "seen" },
        { time: "2026-12-06T00:01:00Z", state: "installing", detail: "apply" },
        { time: "2026-12-06T00:02:00Z", state: "failed", detail: "disk busy" },
      ],
      report: null,
      flags: [],
    };
    expect(lastFailure(d)).toEqual({
      time: "2026-12-06T00:02:00Z",
      state: "installing",
      detail: "disk busy",
      log: null,
    });
    expect(lastFailure({ ...d, failure: { time: "t", detail: "x", log: ["a", "b"] } })).toEqual({
      time: "t",
      state: "installing",
      detail: "x",
      log: "a\nb",
    });
    expect(lastFailure({ ...d, timeline: d.timeline.slice(0, 2) })).toBeNull();
  });
});
