// What the dashboard knows of the fleet: the nodes of GET /v1/status, kept current by the server's
// events. Pure (no DOM), so the rules are tested in Node and the page only draws. Each event is
// applied the way the node table applies the input (node-table.ts); a status reload replaces
// everything, which is how a reconnect and anything the events do not carry (a node's name from the
// nodes file) catch up.
import type { NodeStatus } from "../http/status.js";
import type { NodeInput, NodeState } from "../node-state.js";
import { boundTimeline, type ServeEvent, STATE_ORDER } from "../node-table.js";

export interface TimelineItem {
  /** Unix ms on the server's clock. */
  time: number;
  input: NodeInput;
  from: NodeState;
  state: NodeState;
  durationMs: number;
  detail?: string | undefined;
  unexpected?: boolean | undefined;
}

export interface WebNode {
  mac: string;
  name?: string | undefined;
  known: boolean;
  /** Unattended install (the nodes file's `install: true`). */
  install: boolean;
  state: NodeState;
  /** Unix ms, server clock: entered the current state; first seen. */
  since: number;
  firstSeen: number;
  lastEvent: string;
  bytes: number;
  /** Boot once: the next network boot goes to the local disk. */
  installed: boolean;
  stalledIn?: NodeState | undefined;
  hint?: string | undefined;
  timeline: TimelineItem[];
}

/** What GET /v1/status answers, as far as the page reads it. */
export interface StatusBody {
  version: string;
  server: Record<string, unknown>;
  nodes: NodeStatus[];
}

/** States that need the operator: they stand out in the table and are listed first. */
/** At most one redraw this often (ms): a thousand nodes updating cost one pass, not a thousand. */
export const REDRAW_MS = 100;

export const ATTENTION: ReadonlySet<NodeState> = new Set<NodeState>(["stalled", "failed"]);

/** Order of the table: by name where the nodes file gives one, then MAC (stable while states move). */
export function compareNodes(a: WebNode, b: WebNode): number {
  const ka = a.name ?? "\uffff";
  const kb = b.name ?? "\uffff";
  if (ka !== kb) return ka.localeCompare(kb, undefined, { numeric: true });
  return a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0;
}

export class FleetModel {
  readonly nodes = new Map<string, WebNode>();
  version = "";
  server: Record<string, unknown> = {};
  /** Server clock minus this clock (ms), from the last status: times in state are shown by the server's clock. */
  skewMs = 0;
  /** Nodes first seen through an event (not in the last status): their names need a reload. */
  unnamed = 0;

  /** Replaces everything with a status snapshot, read at `receivedAt` on this clock. */
  load(body: StatusBody, receivedAt: number): void {
    this.nodes.clear();
    this.unnamed = 0;
    this.version = body.version;
    this.server = body.server;
    const first = body.nodes[0];
    this.skewMs = first ? Date.parse(first.since) + first.inStateMs - receivedAt : 0;
    for (const n of body.nodes) {
      const since = Date.parse(n.since);
      this.nodes.set(n.mac, {
        mac: n.mac,
        name: n.name,
        known: n.known,
        install: n.install,
        state: n.state,
        since,
        firstSeen: since + n.inStateMs - n.elapsedMs,
        lastEvent: n.lastEvent,
        bytes: n.bytes,
        installed: n.installed,
        stalledIn: n.stalledIn,
        hint: n.hint,
        timeline: n.timeline.map((t) => ({ ...t, time: Date.parse(t.time) })),
      });
    }
  }

  /**
   * Applies one server event; returns the MAC of the node it changed, if any. With `dedupe` (events
   * that arrived while a status was loading), an event the snapshot already holds is skipped.
   */
  apply(e: ServeEvent, dedupe = false): string | undefined {
    if (e.type !== "node-state" && e.type !== "node-progress" && e.type !== "node-unexpected")
      return undefined;
    const time = Date.parse(e.time);
    let node = this.nodes.get(e.mac);
    if (dedupe && node?.timeline.some((t) => t.time === time && t.input === e.input)) return undefined;
    if (!node) {
      const elapsed = e.type === "node-unexpected" ? 0 : e.elapsedMs;
      const from = e.type === "node-state" ? e.from : e.state;
      node = {
        mac: e.mac,
        known: false,
        install: false,
        state: from,
        since: time - (e.type === "node-state" ? e.durationMs : 0),
        firstSeen: time - elapsed,
        lastEvent: from,
        bytes: 0,
        installed: false,
        timeline: [],
      };
      this.nodes.set(e.mac, node);
      this.unnamed += 1;
    }
    const from = e.type === "node-state" ? e.from : e.state;
    const item: TimelineItem = {
      time,
      input: e.input,
      from,
      state: e.state,
      durationMs: e.type === "node-state" ? e.durationMs : Math.max(0, time - node.since),
      detail: e.detail,
    };
    if (e.type === "node-unexpected") {
      // Recorded, nothing else changes (the table does the same).
      item.unexpected = true;
      push(node, item);
      return e.mac;
    }
    node.lastEvent = e.detail ? `${e.input}: ${e.detail}` : e.input;
    if (e.input === "installed") node.installed = true;
    if (e.input === "rearm") node.installed = false;
    if (e.type === "node-progress" && e.bytes) node.bytes += e.bytes;
    push(node, item);
    if (e.type === "node-state") {
      node.state = e.state;
      node.since = time;
      node.stalledIn = e.state === "stalled" ? e.from : undefined;
      node.hint = e.state === "stalled" ? e.hint : undefined;
    }
    return e.mac;
  }

  /** Nodes by state, in boot-chain order. */
  counts(): [NodeState, number][] {
    const c = new Map<NodeState, number>();
    for (const n of this.nodes.values()) c.set(n.state, (c.get(n.state) ?? 0) + 1);
    return [...c].sort((a, b) => STATE_ORDER[a[0]] - STATE_ORDER[b[0]]);
  }

  /** Stalled and failed nodes, the most recent first. */
  attention(): WebNode[] {
    return [...this.nodes.values()].filter((n) => ATTENTION.has(n.state)).sort((a, b) => b.since - a.since);
  }

  /** The server's clock now. */
  now(local = Date.now()): number {
    return local + this.skewMs;
  }
}

function push(node: WebNode, item: TimelineItem): void {
  node.timeline.push(item);
  boundTimeline(node.timeline);
}

/** The state a failed node was in when it failed (the state its last transition into "failed" left). */
export function failedIn(n: WebNode): NodeState | undefined {
  for (let i = n.timeline.length - 1; i >= 0; i--) {
    const t = n.timeline[i];
    if (t && t.state === "failed" && t.from !== "failed" && !t.unexpected) return t.from;
  }
  return undefined;
}

/** The state column, in words (readable without colour). */
export function stateLabel(n: WebNode): string {
  if (n.state === "stalled") return n.stalledIn ? `STALLED in ${n.stalledIn}` : "STALLED";
  if (n.state === "failed") {
    const where = failedIn(n);
    return where ? `FAILED in ${where}` : "FAILED";
  }
  return n.state;
}

/** Whether a node matches the filter box: MAC, name, state or last event, case-insensitive. */
export function matches(n: WebNode, text: string): boolean {
  if (!text) return true;
  const t = text.toLowerCase();
  return (
    n.mac.includes(t) ||
    (n.name?.toLowerCase().includes(t) ?? false) ||
    stateLabel(n).toLowerCase().includes(t) ||
    n.lastEvent.toLowerCase().includes(t)
  );
}
