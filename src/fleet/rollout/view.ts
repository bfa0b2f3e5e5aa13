// A rollout as the API, the dashboard and the CLI see it (the fleet API contract's Rollout): its
// state and wave, each node, the counts, why nothing more is powered on now (asked of the same pure
// decision the runner takes), and its last events.
import type { StoredRollout, StoredRolloutNode } from "../store/rollouts.js";
import { next, type RolloutNode } from "./decide.js";
import { configOf, type RolloutParams } from "./params.js";
import { IN_FLIGHT, type NodeRolloutState, type RolloutState } from "./states.js";

export interface RolloutView {
  id: number;
  name: string;
  state: RolloutState;
  params: RolloutParams;
  wave: number;
  nodes: {
    id: string;
    name: string | null;
    rack: string | null;
    state: NodeRolloutState;
    wave: number | null;
    reason: string | null;
  }[];
  counts: { waiting: number; inFlight: number; verified: number; failed: number; held: number };
  why: string | null;
  events: { time: string; event: string; detail: string }[];
}

export function viewOf(
  r: Pick<StoredRollout, "id" | "name" | "status" | "params" | "wave">,
  nodes: readonly StoredRolloutNode[],
  events: readonly { time: Date; event: string; detail: string }[],
  now: number,
): RolloutView {
  const params = r.params as RolloutParams;
  const counts = { waiting: 0, inFlight: 0, verified: 0, failed: 0, held: 0 };
  for (const n of nodes) {
    const s = n.state as NodeRolloutState;
    if (IN_FLIGHT.has(s)) counts.inFlight++;
    else if (s === "waiting") counts.waiting++;
    else if (s === "verified") counts.verified++;
    else if (s === "failed") counts.failed++;
    else if (s === "held") counts.held++;
  }
  const d = next(
    { state: r.status as RolloutState, wave: r.wave, config: configOf(params) },
    decideNodes(nodes),
    now,
  );
  const unapproved = nodes.filter((n) => n.state === "waiting" && !n.approved).length;
  const why = [...d.why, ...(unapproved > 0 ? [`${unapproved} waiting for approval`] : [])];
  return {
    id: r.id,
    name: r.name,
    state: r.status as RolloutState,
    params,
    wave: r.wave,
    nodes: nodes.map((n) => ({
      id: String(n.nodeId),
      name: null,
      rack: n.rack,
      state: n.state as NodeRolloutState,
      wave: n.wave,
      reason: n.state === "held" ? (n.hold ?? n.detail) : n.state === "failed" ? n.detail : null,
    })),
    counts,
    why: why.length > 0 ? why.join("; ") : null,
    events: events.map((e) => ({ time: e.time.toISOString(), event: e.event, detail: e.detail })),
  };
}

/** The stored rollout nodes as next() takes them (the runner and the view decide on the same input). */
export function decideNodes(nodes: readonly StoredRolloutNode[]): RolloutNode[] {
  return nodes.map((n) => ({
    id: String(n.nodeId),
    rack: n.rack ?? "",
    approved: n.approved,
    state: n.state as NodeRolloutState,
    wave: n.wave,
    poweredOnAt: n.poweredOnAt,
  }));
}
