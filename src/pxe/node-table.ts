// The node table: one small record per node, moved by the transition table (node-state.ts), each
// change published as an event with the time spent in the state it left. Work per input is O(1)
// (a map lookup, a row lookup, a bounded timeline push); stalls are found by one sweep a second.
import type { FleetNode } from "../app/fleet-serve.js";
import type { RolloutView } from "../fleet/rollout/view.js";
import { NODE_STATES, type NodeInput, type NodeState, nextState, TIMEOUTS } from "./node-state.js";

/** Timeline entries kept per node (older ones are dropped): memory per node stays small and bounded. */
export const TIMELINE_MAX = 48;

/**
 * Keeps a timeline at TIMELINE_MAX entries. Progress within a state goes first: the transitions are
 * the node's story, and a node that waits an hour for approval (lease renewals, polls) would
 * otherwise lose how it booted. The server's table and the dashboard's model both use it.
 */
export function boundTimeline(timeline: { state: string; from: string; unexpected?: boolean }[]): void {
  while (timeline.length > TIMELINE_MAX) {
    const progress = timeline.findIndex((e) => e.state === e.from && !e.unexpected);
    timeline.splice(Math.max(progress, 0), 1);
  }
}

export interface TimelineEntry {
  /** Unix ms. */
  time: number;
  input: NodeInput;
  from: NodeState;
  state: NodeState;
  /** Time spent in `from` before this input (ms). */
  durationMs: number;
  detail?: string;
  /** The table does not allow this input in `from`: recorded, state unchanged. */
  unexpected?: true;
}

export interface NodeRecord {
  mac: string;
  state: NodeState;
  /** Unix ms: first seen, entered the current state, last input of any kind. */
  firstSeen: number;
  stateSince: number;
  lastInputAt: number;
  /** The last thing that happened, one short line. */
  lastEvent: string;
  /** Bytes served to the node (TFTP and HTTP). */
  bytes: number;
  /** Boot once: the next boot script sends it to its local disk until re-armed. */
  installed: boolean;
  /** The state a stalled node stopped in, and where to look. */
  stalledIn?: NodeState;
  hint?: string;
  timeline: TimelineEntry[];
}

export type ServeEvent =
  | {
      type: "node-state";
      mac: string;
      from: NodeState;
      state: NodeState;
      input: NodeInput;
      time: string;
      /** Time spent in `from` (ms). */
      durationMs: number;
      /** Since the node was first seen (ms). */
      elapsedMs: number;
      detail?: string;
      hint?: string;
    }
  | {
      /** An input that kept the state (a finished download, an apply step). */
      type: "node-progress";
      mac: string;
      state: NodeState;
      input: NodeInput;
      time: string;
      elapsedMs: number;
      detail?: string;
      bytes?: number;
    }
  | { type: "rollout"; time: string; rollout: RolloutView }
  | {
      type: "node-unexpected";
      mac: string;
      state: NodeState;
      input: NodeInput;
      time: string;
      detail?: string;
    }
  | {
      /** A TFTP transfer, whoever asked (a node or a script using --files). */
      type: "transfer";
      protocol: "tftp";
      time: string;
      client: string;
      file: string;
      outcome: string;
      bytes: number;
      durationMs: number;
      retransmits: number;
      blksize: number;
      windowsize: number;
      detail?: string;
    }
  | { type: "listening"; time: string; http: string; tftp: string; dhcp: string; netboot: string | null }
  | { type: "warning"; time: string; message: string }
  /** A fleet node changed (approved, held, re-armed, reported): the fleet store's view of it. */
  | { type: "fleet-node"; time: string; node: FleetNode }
  | { type: "stopped"; time: string };

export interface NodeTableOptions {
  now?: () => number;
  /** Whether a node is expected to install unattended (an interactive node may rest at "appliance-up"). */
  unattended?: (mac: string) => boolean;
  /** Timeout overrides in seconds (tests, and operators with slow links). */
  timeouts?: Partial<Record<NodeState, number>>;
  /** Most nodes kept that got no further than DHCP (default 4096); see NodeTable.early. */
  maxEarly?: number;
}

/** States anyone on the segment reaches by sending DHCP with a made-up MAC. */
const EARLY: ReadonlySet<NodeState> = new Set<NodeState>(["discovered", "offered"]);

export class NodeTable {
  private readonly nodes = new Map<string, NodeRecord>();
  /**
   * Nodes that got no further than DHCP, oldest first. A flood of DHCP packets with random MACs
   * would otherwise grow the table without bound; beyond maxEarly the oldest of these is forgotten
   * (a real node that comes back is simply seen again).
   */
  private readonly early = new Map<string, true>();
  /** Nodes forgotten that way, for the status. */
  evicted = 0;
  private readonly listeners = new Set<(e: ServeEvent) => void>();
  private readonly now: () => number;

  constructor(private readonly options: NodeTableOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  subscribe(fn: (e: ServeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  publish(e: ServeEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch {
        // A broken view (a closed pipe, a gone SSE client) must not stop the server.
      }
    }
  }

  get(mac: string): NodeRecord | undefined {
    return this.nodes.get(mac);
  }

  all(): NodeRecord[] {
    return [...this.nodes.values()];
  }

  get size(): number {
    return this.nodes.size;
  }

  /** The node's record, created in "discovered" (or "installed" when restored) on first sight. */
  touch(mac: string, installed = false): NodeRecord {
    let node = this.nodes.get(mac);
    if (!node) {
      const t = this.now();
      node = {
        mac,
        state: installed ? "installed" : "discovered",
        firstSeen: t,
        stateSince: t,
        lastInputAt: t,
        lastEvent: installed ? "installed (restored)" : "discovered",
        bytes: 0,
        installed,
        timeline: [],
      };
      this.nodes.set(mac, node);
      if (!installed) this.noteEarly(mac);
    }
    return node;
  }

  private noteEarly(mac: string): void {
    this.early.set(mac, true);
    const cap = this.options.maxEarly ?? 4096;
    for (const oldest of this.early.keys()) {
      if (this.early.size <= cap) break;
      this.early.delete(oldest);
      const node = this.nodes.get(oldest);
      if (node && !node.installed && (EARLY.has(node.state) || EARLY.has(node.stalledIn as NodeState))) {
        this.nodes.delete(oldest);
        if (this.evicted++ === 0)
          this.publish({
            type: "warning",
            time: iso(this.now()),
            message: `more than ${cap} nodes got no further than DHCP: the oldest are forgotten (a DHCP flood, or many nodes that never fetch iPXE)`,
          });
      }
    }
  }

  /** Feeds one input to a node; returns the state it is in afterwards. */
  input(mac: string, input: NodeInput, detail?: string, bytes = 0): NodeState {
    const node = this.touch(mac);
    const t = this.now();
    const from = node.state;
    const to = nextState(from, input);
    const entry: TimelineEntry = { time: t, input, from, state: to ?? from, durationMs: t - node.stateSince };
    if (detail) entry.detail = detail;
    node.bytes += bytes;
    if (to === undefined) {
      entry.unexpected = true;
      this.push(node, entry);
      this.publish({ type: "node-unexpected", mac, state: from, input, time: iso(t), ...opt({ detail }) });
      return from;
    }
    node.lastInputAt = t;
    node.lastEvent = detail ? `${input}: ${detail}` : input;
    if (input === "installed") node.installed = true;
    if (input === "rearm") node.installed = false;
    this.push(node, entry);
    if (to === from) {
      this.publish({
        type: "node-progress",
        mac,
        state: to,
        input,
        time: iso(t),
        elapsedMs: t - node.firstSeen,
        ...opt({ detail }),
        ...(bytes ? { bytes } : {}),
      });
      return to;
    }
    let hint: string | undefined;
    if (to === "stalled") {
      node.stalledIn = from;
      hint = TIMEOUTS[from]?.hint;
      node.hint = hint;
    } else {
      node.stalledIn = undefined;
      node.hint = undefined;
    }
    node.state = to;
    node.stateSince = t;
    if (!EARLY.has(to) && to !== "stalled") this.early.delete(mac);
    this.publish({
      type: "node-state",
      mac,
      from,
      state: to,
      input,
      time: iso(t),
      durationMs: entry.durationMs,
      elapsedMs: t - node.firstSeen,
      ...opt({ detail, hint }),
    });
    return to;
  }

  /** The timeout in seconds that applies to a node in its state, if any. */
  timeoutFor(node: NodeRecord): number | undefined {
    const o = this.options;
    if (node.state === "appliance-up" && !(o.unattended?.(node.mac) ?? false)) return undefined;
    return o.timeouts?.[node.state] ?? TIMEOUTS[node.state]?.seconds;
  }

  /** Moves every node that saw no input within its state's timeout to "stalled". */
  sweep(): void {
    const t = this.now();
    for (const node of this.nodes.values()) {
      const seconds = this.timeoutFor(node);
      if (seconds === undefined || t - node.lastInputAt < seconds * 1000) continue;
      this.input(node.mac, "timeout", `no progress for ${Math.round((t - node.lastInputAt) / 1000)} s`);
    }
  }

  private push(node: NodeRecord, entry: TimelineEntry): void {
    node.timeline.push(entry);
    boundTimeline(node.timeline);
  }
}

/** Node states in boot-chain order (for sorting and the dashboard). */
export const STATE_ORDER: Readonly<Record<NodeState, number>> = Object.fromEntries(
  NODE_STATES.map((s, i) => [s, i]),
) as Record<NodeState, number>;

const iso = (t: number) => new Date(t).toISOString();

/** Only the defined fields (exactOptionalPropertyTypes-friendly spreads). */
function opt<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
