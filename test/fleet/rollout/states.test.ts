// The rollout's and its nodes' transition tables: every state has a row, the final states accept
// nothing, an event a row does not list keeps the state and says so, and late progress reports never
// move a node back.
import { describe, expect, it } from "vitest";
import {
  NODE_ROLLOUT_EVENTS,
  NODE_ROLLOUT_STATES,
  NODE_ROLLOUT_TRANSITIONS,
  nodeTransition,
  ROLLOUT_EVENTS,
  ROLLOUT_STATES,
  ROLLOUT_TRANSITIONS,
  rolloutTransition,
} from "../../../src/fleet/rollout/states.js";

describe("rollout transition tables", () => {
  it("have a row for every state, leading only to known states", () => {
    expect(Object.keys(ROLLOUT_TRANSITIONS).sort()).toEqual([...ROLLOUT_STATES].sort());
    expect(Object.keys(NODE_ROLLOUT_TRANSITIONS).sort()).toEqual([...NODE_ROLLOUT_STATES].sort());
    for (const row of Object.values(ROLLOUT_TRANSITIONS))
      for (const [e, to] of Object.entries(row)) {
        expect(ROLLOUT_EVENTS).toContain(e);
        expect(ROLLOUT_STATES).toContain(to);
      }
    for (const row of Object.values(NODE_ROLLOUT_TRANSITIONS))
      for (const [e, to] of Object.entries(row)) {
        expect(NODE_ROLLOUT_EVENTS).toContain(e);
        expect(NODE_ROLLOUT_STATES).toContain(to);
      }
  });

  it("end in aborted and done, and abort reaches every other state", () => {
    for (const e of ROLLOUT_EVENTS) {
      expect(rolloutTransition("aborted", e)).toEqual({ state: "aborted", expected: false });
      expect(rolloutTransition("done", e)).toEqual({ state: "done", expected: false });
    }
    for (const s of ROLLOUT_STATES.filter((x) => x !== "aborted" && x !== "done"))
      expect(rolloutTransition(s, "abort").state).toBe("aborted");
  });

  it("resume goes back to the phase that was paused or halted", () => {
    expect(rolloutTransition("canary-paused", "resume").state).toBe("canary");
    expect(rolloutTransition("canary-halted", "resume").state).toBe("canary");
    expect(rolloutTransition("paused", "resume").state).toBe("running");
    expect(rolloutTransition("halted", "resume").state).toBe("running");
    expect(rolloutTransition("running", "resume")).toEqual({ state: "running", expected: false });
  });

  it("keeps a node where it is on a late report, and never powers a held node on", () => {
    expect(nodeTransition("installing", "powered")).toEqual({ state: "installing", expected: true });
    expect(nodeTransition("installed", "boot-seen").state).toBe("installed");
    expect(nodeTransition("booting", "installed").state).toBe("installed");
    expect(nodeTransition("held", "power-on")).toEqual({ state: "held", expected: false });
    expect(nodeTransition("verified", "failed")).toEqual({ state: "verified", expected: false });
    expect(nodeTransition("installing", "timeout").state).toBe("failed");
    expect(nodeTransition("failed", "rearm").state).toBe("waiting");
  });
});
