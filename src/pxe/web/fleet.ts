// What the dashboard knows of the fleet: GET /v1/fleet/nodes and the current rollout (the fleet API
// contract), kept current by the `fleet-node` and `rollout` events of GET /v1/events, which carry
// the whole node or rollout: an event replaces what the page holds. Pure (no DOM), so the grouping
// rules are tested in Node; fleet-view.ts draws.
import { ROLLOUT_TRANSITIONS, type RolloutState } from "../../fleet/rollout/states.js";

export interface FleetHold {
  source: string;
  reason: string;
  since: string;
}

export interface FleetNode {
  id: number | string;
  name: string | null;
  rack: string | null;
  macs: string[];
  uuid: string | null;
  serial: string | null;
  assetTag: string | null;
  state: string;
  approved: boolean;
  held: boolean;
  holds: FleetHold[];
  lastEvent: { time: string; detail: string } | null;
  answer: "ready" | "held" | "none";
}

/** GET /v1/fleet/nodes/NODE. `failure` is optional (the contract allows added fields): the node's last failure with a log excerpt. */
export interface FleetNodeDetail extends FleetNode {
  timeline: { time: string; state: string; detail: string | null }[];
  report: {
    cpu?: { model?: string | null } | null;
    memoryGiB?: number | null;
    nics?: unknown;
    disks?: unknown;
  } | null;
  flags: unknown[];
  failure?: { time: string; state?: string | null; detail: string; log?: string | string[] | null } | null;
}

export interface RolloutNode {
  id: number | string;
  name: string | null;
  rack: string | null;
  state: string;
  wave: number | null;
  reason: string | null;
}

export interface Rollout {
  id: number | string;
  name: string;
  state: string;
  params: unknown;
  wave: number;
  nodes: RolloutNode[];
  counts: { waiting: number; inFlight: number; verified: number; failed: number; held: number };
  why: string | null;
  events: { time: string; event: string; detail: string | null }[];
}

export type FleetEvent = { type: "fleet-node"; node: FleetNode } | { type: "rollout"; rollout: Rollout };

/** The rack of nodes that have none yet (discovered on a segment the store has no rack for). */
export const NO_RACK = "(no rack)";

export const rackOf = (n: { rack: string | null }) => n.rack ?? NO_RACK;
export const nodeKey = (n: { id: number | string }) => String(n.id);
/** A node's name for people: its name, else its first MAC, else its id. */
export const nodeLabel = (n: { name: string | null; macs?: string[]; id: number | string }) =>
  n.name ?? n.macs?.[0] ?? `node ${n.id}`;

/** Discovered and not approved: nothing installs on it until the operator approves. */
export const awaitingApproval = (n: FleetNode) => !n.approved;

/** The node's state in words (readable without colour): a hold and the approval gate come first. */
export function fleetStateLabel(n: FleetNode): string {
  if (n.held) return n.state === "held" ? "HELD" : `HELD (${n.state})`;
  if (!n.approved) return `waiting for approval (${n.state})`;
  return n.state;
}

/** What a rack's line counts: the state, or the gate that keeps the node from installing. */
export const countKey = (n: FleetNode) => (n.held ? "held" : n.approved ? n.state : "waiting for approval");

export interface RackSummary {
  rack: string;
  total: number;
  /** By countKey, most first. */
  counts: [string, number][];
  waiting: number;
  held: number;
}

/** Rollout actions the page offers, with the event the rollout's transition table must list. */
export const ROLLOUT_ACTIONS = ["pause", "resume", "abort"] as const;
export type RolloutAction = (typeof ROLLOUT_ACTIONS)[number];

/** Whether the rollout's transition table takes `action` in its state (the server answers 409 otherwise). */
export function rolloutAllows(state: string, action: RolloutAction): boolean {
  const row = ROLLOUT_TRANSITIONS[state as RolloutState];
  return row !== undefined && row[action] !== undefined;
}

const ROLLOUT_NODE_ORDER: Record<string, number> = {
  failed: 0,
  "powering-on": 1,
  booting: 2,
  installing: 3,
  installed: 4,
  held: 5,
  waiting: 6,
  verified: 7,
};

/** A rollout's nodes, the ones to look at first: failed, in flight, held, waiting, verified. */
export function rolloutNodesInOrder(r: Rollout): RolloutNode[] {
  return [...r.nodes].sort(
    (a, b) =>
      (ROLLOUT_NODE_ORDER[a.state] ?? 9) - (ROLLOUT_NODE_ORDER[b.state] ?? 9) ||
      (a.wave ?? 1e9) - (b.wave ?? 1e9) ||
      compareNames(a.name ?? String(a.id), b.name ?? String(b.id)),
  );
}

const compareNames = (a: string, b: string) => a.localeCompare(b, undefined, { numeric: true });

export function compareFleetNodes(a: FleetNode, b: FleetNode): number {
  return compareNames(nodeLabel(a), nodeLabel(b)) || compareNames(nodeKey(a), nodeKey(b));
}

/** The last failure of a node: the server's `failure` when it sends one, else its timeline's last "failed". */
export function lastFailure(
  d: FleetNodeDetail,
): { time: string; state: string | null; detail: string; log: string | null } | null {
  // The state it failed in: the one before its timeline's last "failed".
  let at = -1;
  for (let i = d.timeline.length - 1; i >= 0 && at < 0; i--) if (d.timeline[i]?.state === "failed") at = i;
  const before = at > 0 ? (d.timeline[at - 1]?.state ?? null) : null;
  if (d.failure) {
    const log = Array.isArray(d.failure.log) ? d.failure.log.join("\n") : (d.failure.log ?? null);
    return { time: d.failure.time, state: d.failure.state ?? before, detail: d.failure.detail, log };
  }
  const t = d.timeline[at];
  return t ? { time: t.time, state: before, detail: t.detail ?? "failed", log: null } : null;
}

export class FleetState {
  readonly nodes = new Map<string, FleetNode>();
  rollout: Rollout | null = null;
  loaded = false;
  /** The rollout's nodes by node key (rebuilt when the rollout changes). */
  private rolloutIndex = new Map<string, RolloutNode>();

  load(nodes: FleetNode[], rollout: Rollout | null): void {
    this.nodes.clear();
    for (const n of nodes) this.nodes.set(nodeKey(n), n);
    this.setRollout(rollout);
    this.loaded = true;
  }

  /** Applies a fleet event; returns what it changed: a node's key, "rollout", or undefined. */
  apply(e: FleetEvent): string | undefined {
    if (e.type === "fleet-node" && e.node) {
      const key = nodeKey(e.node);
      this.nodes.set(key, e.node);
      return key;
    }
    if (e.type === "rollout" && e.rollout) {
      // An older rollout's late event does not replace the one shown, unless that one has ended.
      const cur = this.rollout;
      if (cur && String(cur.id) !== String(e.rollout.id) && !ended(cur.state) && ended(e.rollout.state))
        return undefined;
      this.setRollout(e.rollout);
      return "rollout";
    }
    return undefined;
  }

  /** Nodes waiting for approval, by name. */
  waiting(): FleetNode[] {
    return [...this.nodes.values()].filter(awaitingApproval).sort(compareFleetNodes);
  }

  /** Racks by name, "(no rack)" last. */
  racks(): RackSummary[] {
    const by = new Map<string, FleetNode[]>();
    for (const n of this.nodes.values()) {
      const r = rackOf(n);
      const list = by.get(r);
      if (list) list.push(n);
      else by.set(r, [n]);
    }
    return [...by]
      .sort(([a], [b]) => (a === NO_RACK ? 1 : b === NO_RACK ? -1 : compareNames(a, b)))
      .map(([rack, nodes]) => {
        const c = new Map<string, number>();
        for (const n of nodes) c.set(countKey(n), (c.get(countKey(n)) ?? 0) + 1);
        return {
          rack,
          total: nodes.length,
          counts: [...c].sort((a, b) => b[1] - a[1] || compareNames(a[0], b[0])),
          waiting: nodes.filter(awaitingApproval).length,
          held: nodes.filter((n) => n.held).length,
        };
      });
  }

  inRack(rack: string): FleetNode[] {
    return [...this.nodes.values()].filter((n) => rackOf(n) === rack).sort(compareFleetNodes);
  }

  /** The node's state in the current rollout, if it is in it. */
  rolloutState(key: string): RolloutNode | undefined {
    return this.rolloutIndex.get(key);
  }

  private setRollout(r: Rollout | null): void {
    this.rollout = r;
    this.rolloutIndex = new Map((r?.nodes ?? []).map((n) => [nodeKey(n), n]));
  }
}

const ended = (state: string) => state === "aborted" || state === "done";
