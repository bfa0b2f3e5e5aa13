// The store's records as its callers see them (ids as numbers, times as Date).

export interface NodeRow {
  id: number;
  uuid: string | null;
  serial: string | null;
  assetTag: string | null;
  product: string | null;
  rack: string | null;
  state: string;
  stateSince: Date;
  createdAt: Date;
  macs: string[];
}

/** A node with what its view needs besides itself: approved, its open holds, its newest event. */
export interface NodeSummary {
  node: NodeRow;
  approved: boolean;
  holds: HoldRow[];
  lastEvent: EventRow | null;
}

export interface EventInput {
  type: string;
  /** Default: now. */
  time?: Date | string;
  /** Who wrote it: a rack's serve, the operator's CLI. */
  source?: string;
  nodeId?: number;
  /** Whose event, when only the MAC is known; the store fills in the node it belongs to. */
  mac?: string;
  /** The state the node entered: also goes on its timeline and becomes its current state. */
  state?: string;
  body?: unknown;
}

export interface EventRow {
  seq: number;
  time: Date;
  source: string | null;
  nodeId: number | null;
  mac: string | null;
  type: string;
  state: string | null;
  body: unknown;
}

export interface TimelineRow {
  seq: number;
  state: string;
  enteredAt: Date;
}

export interface HoldRow {
  id: number;
  nodeId: number;
  source: "operator" | "identity" | "answer" | "rollout";
  reason: string;
  heldBy: string | null;
  createdAt: Date;
}

export interface FlagRow {
  id: number;
  nodeId: number;
  otherNode: number | null;
  kind: string;
  detail: string;
  createdAt: Date;
}

export interface RolloutRow {
  id: number;
  name: string;
  status: string;
  params: unknown;
  createdAt: Date;
  updatedAt: Date;
}

export interface RolloutNodeRow {
  nodeId: number;
  wave: number;
  state: string;
  detail: string | null;
  updatedAt: Date;
}

export interface LeaseRow {
  segment: string;
  mac: string;
  address: string;
  expiresAt: Date;
}
