// A small rollout world for the tests and the bench: nodes in racks, the decision applied as the
// server will apply it (chosen nodes go powering-on in the decision's wave at `now`), and node
// outcomes driven by the caller. It uses the transition tables for every move, so an event the
// tables do not allow shows up as a test failure rather than being papered over here.
import {
  next,
  type Rollout,
  type RolloutConfig,
  type RolloutNode,
} from "../../../src/fleet/rollout/decide.js";
import {
  IN_FLIGHT,
  type NodeRolloutEvent,
  nodeTransition,
  type RolloutEvent,
  rolloutTransition,
} from "../../../src/fleet/rollout/states.js";

export function makeNodes(
  racks: number,
  perRack: number,
  o: { unapproved?: (i: number) => boolean; held?: (i: number) => boolean } = {},
): RolloutNode[] {
  const out: RolloutNode[] = [];
  for (let r = 0; r < racks; r++)
    for (let k = 0; k < perRack; k++) {
      const i = out.length;
      out.push({
        id: `r${r}-n${String(k).padStart(4, "0")}`,
        rack: `r${r}`,
        approved: !(o.unapproved?.(i) ?? false),
        state: o.held?.(i) ? "held" : "waiting",
        wave: null,
        poweredOnAt: null,
      });
    }
  return out;
}

export class World {
  rollout: Rollout;
  readonly nodes: Map<string, RolloutNode>;
  now = 0;
  /** Every power-on: [time, node]. */
  readonly log: { at: number; id: string; rack: string; wave: number; state: string }[] = [];

  constructor(config: RolloutConfig, nodes: RolloutNode[]) {
    this.rollout = { state: "pending", wave: 0, config };
    this.nodes = new Map(nodes.map((n) => [n.id, { ...n }]));
  }

  list(): RolloutNode[] {
    return [...this.nodes.values()];
  }

  operator(e: RolloutEvent): boolean {
    const t = rolloutTransition(this.rollout.state, e);
    this.rollout = { ...this.rollout, state: t.state };
    return t.expected;
  }

  node(id: string, e: NodeRolloutEvent): boolean {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    const t = nodeTransition(n.state, e);
    n.state = t.state;
    if (e === "rearm" && t.expected) n.wave = null;
    return t.expected;
  }

  /** One decision, applied. */
  step() {
    const before = this.rollout.state;
    const d = next(this.rollout, this.list(), this.now);
    this.rollout = { ...this.rollout, state: d.state, wave: d.wave };
    for (const id of d.powerOn) {
      const n = this.nodes.get(id) as RolloutNode;
      this.log.push({ at: this.now, id, rack: n.rack, wave: d.wave, state: n.state });
      if (!this.node(id, "power-on")) throw new Error(`decision chose ${id} in state ${n.state}`);
      n.wave = d.wave;
      n.poweredOnAt = this.now;
    }
    return { before, decision: d };
  }

  inFlight(): RolloutNode[] {
    return this.list().filter((n) => IN_FLIGHT.has(n.state));
  }
}

/** The successful path of a node, one step per call. */
export const ADVANCE: Partial<Record<RolloutNode["state"], NodeRolloutEvent>> = {
  "powering-on": "powered",
  booting: "installing",
  installing: "installed",
  installed: "verified",
};
