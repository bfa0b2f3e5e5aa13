// The fleet store: one class over either driver (sql.ts). Every change that matters writes an event
// in the same transaction, so the event stream (and LISTEN/NOTIFY on it) is the one feed every
// view follows: a second serve, the dashboard, the CLI.

import {
  type IdentityInput,
  type KnownNode,
  normalMac,
  normalSerial,
  normalUuid,
  type Resolution,
  resolveIdentity,
} from "./identity.js";
import { EventWriter, type WriterOptions } from "./ingest.js";
import {
  heldLease,
  type Lease,
  type SessionClient,
  type SessionLeaseOptions,
  sessionLease,
} from "./lease.js";
import { Live } from "./live.js";
import type { Sql, Tx } from "./sql.js";
import type {
  EventInput,
  EventRow,
  FlagRow,
  HoldRow,
  LeaseRow,
  NodeRow,
  NodeSummary,
  RolloutNodeRow,
  RolloutRow,
  TimelineRow,
} from "./types.js";

/** Serialises identity resolution across processes, so one new machine never becomes two nodes. */
const IDENTITY_LOCK = 4_711_002;

export interface ResolveOptions {
  rack?: string;
  product?: string;
  /** Who saw it (goes on the events). */
  source?: string;
}

export interface Resolved {
  node: NodeRow;
  created: boolean;
  flags: Resolution["flags"];
}

type Row = Record<string, unknown>;

const NODE_COLUMNS = `n.id, n.uuid, n.serial, n.asset_tag, n.product, n.rack, n.state, n.state_since, n.created_at,
  coalesce((SELECT jsonb_agg(m.mac ORDER BY m.mac) FROM node_macs m WHERE m.node_id = n.id), '[]'::jsonb) AS macs`;

export class FleetStore {
  private readonly writer: EventWriter;
  private readonly live: Live;

  constructor(
    readonly sql: Sql,
    private readonly onClose: () => Promise<void> = async () => {},
    writer: WriterOptions = {},
    /** A connection of its own (PostgreSQL): what a lease holds its lock on. */
    private readonly session?: () => SessionClient,
  ) {
    this.writer = new EventWriter(sql, writer);
    this.live = new Live(sql, (since, until) => this.eventsBetween(since, until));
  }

  get driver(): Sql["driver"] {
    return this.sql.driver;
  }

  // --- events -------------------------------------------------------------------------------------

  /** Appends an event; resolves with its sequence number once committed (group commit). */
  append(event: EventInput): Promise<number> {
    return this.writer.append(event);
  }

  /** Committed batches and events since open. */
  get ingestStats(): { batches: number; events: number } {
    return { batches: this.writer.batches, events: this.writer.events };
  }

  async eventsSince(seq: number, limit = 1000): Promise<EventRow[]> {
    const rows = await this.sql.query(
      "SELECT seq, time, source, node_id, mac, type, state, body FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
      [seq, limit],
    );
    return rows.map(eventRow);
  }

  private async eventsBetween(lo: number, hi: number): Promise<EventRow[]> {
    const rows = await this.sql.query(
      "SELECT seq, time, source, node_id, mac, type, state, body FROM events WHERE seq BETWEEN $1 AND $2 ORDER BY seq",
      [lo, hi],
    );
    return rows.map(eventRow);
  }

  /**
   * Calls `fn` with each batch of events another process (or this one) commits, in commit order,
   * each event once. After a lost connection it catches up from the last event it delivered.
   */
  subscribe(fn: (events: EventRow[]) => void): Promise<() => Promise<void>> {
    return this.live.subscribe(fn);
  }

  async timeline(nodeId: number): Promise<TimelineRow[]> {
    const rows = await this.sql.query(
      "SELECT event_seq, state, entered_at FROM timelines WHERE node_id = $1 ORDER BY event_seq",
      [nodeId],
    );
    return rows.map((r) => ({
      seq: Number(r.event_seq),
      state: String(r.state),
      enteredAt: date(r.entered_at),
    }));
  }

  // --- nodes and identity -------------------------------------------------------------------------

  /**
   * The node a boot or a report is (identity.ts decides; this applies it), created if new. Flags
   * that contradict a known identity are recorded and hold the node, with an event each.
   */
  async resolveNode(input: IdentityInput, o: ResolveOptions = {}): Promise<Resolved> {
    return this.sql.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [IDENTITY_LOCK]);
      const known = await candidates(tx, input);
      const r = resolveIdentity(input, known);
      let id = r.nodeId;
      const created = id === undefined;
      if (id === undefined) {
        const rows = await tx.query(
          "INSERT INTO nodes (uuid, serial, asset_tag, product, rack) VALUES ($1, $2, $3, $4, $5) RETURNING id",
          [r.uuid, r.serial, r.asset, o.product ?? null, o.rack ?? null],
        );
        id = Number(rows[0]?.id);
        await event(tx, { type: "node-discovered", nodeId: id, source: o.source, body: identityBody(r) });
      } else {
        await tx.query(
          `UPDATE nodes SET uuid = $2, serial = $3, asset_tag = coalesce($4, asset_tag),
             product = coalesce($5, product), rack = coalesce($6, rack), updated_at = now() WHERE id = $1`,
          [id, r.uuid, r.serial, r.asset, o.product ?? null, o.rack ?? null],
        );
      }
      if (r.macs.length > 0)
        await tx.query(
          `INSERT INTO node_macs (mac, node_id) SELECT jsonb_array_elements_text($2::jsonb), $1
           ON CONFLICT (mac) DO UPDATE SET node_id = excluded.node_id, last_seen = now()`,
          [id, JSON.stringify(r.macs)],
        );
      if (r.dropMacs.length > 0)
        await tx.query(
          "DELETE FROM node_macs WHERE node_id = $1 AND mac IN (SELECT jsonb_array_elements_text($2::jsonb))",
          [id, JSON.stringify(r.dropMacs)],
        );
      for (const f of r.flags) {
        await tx.query(
          "INSERT INTO identity_flags (node_id, other_node, kind, detail) VALUES ($1, $2, $3, $4)",
          [id, f.other ?? null, f.kind, f.detail],
        );
        if (f.hold)
          await tx.query("INSERT INTO holds (node_id, source, reason) VALUES ($1, 'identity', $2)", [
            id,
            `${f.kind}: ${f.detail}`,
          ]);
        await event(tx, { type: "identity-flag", nodeId: id, source: o.source, body: f });
      }
      const node = await nodeById(tx, id);
      if (!node) throw new Error(`internal: node ${id} vanished inside its own transaction`);
      return { node, created, flags: r.flags };
    });
  }

  async node(id: number): Promise<NodeRow | undefined> {
    return nodeById(this.sql, id);
  }

  async nodeByMac(mac: string): Promise<NodeRow | undefined> {
    const rows = await this.sql.query(
      `SELECT ${NODE_COLUMNS} FROM nodes n WHERE n.id = (SELECT node_id FROM node_macs WHERE mac = $1)`,
      [normalMac(mac)],
    );
    return rows[0] ? nodeRow(rows[0]) : undefined;
  }

  async nodes(filter: { rack?: string; state?: string } = {}): Promise<NodeRow[]> {
    const rows = await this.sql.query(
      `SELECT ${NODE_COLUMNS} FROM nodes n
       WHERE ($1::text IS NULL OR n.rack = $1) AND ($2::text IS NULL OR n.state = $2) ORDER BY n.id`,
      [filter.rack ?? null, filter.state ?? null],
    );
    return rows.map(nodeRow);
  }

  /**
   * Every node (or those of a rack, a state, one id) with its approval, open holds and newest event,
   * in one statement: the fleet list at 1,000 nodes is one query, not four per node.
   */
  async nodeSummaries(filter: { rack?: string; state?: string; id?: number } = {}): Promise<NodeSummary[]> {
    const rows = await this.sql.query(
      `SELECT ${NODE_COLUMNS},
         EXISTS (SELECT 1 FROM approvals a WHERE a.node_id = n.id) AS approved,
         coalesce((SELECT jsonb_agg(jsonb_build_object('id', h.id, 'source', h.source, 'reason', h.reason,
             'held_by', h.held_by, 'created_at', h.created_at) ORDER BY h.id)
           FROM holds h WHERE h.node_id = n.id AND h.released_at IS NULL), '[]'::jsonb) AS holds,
         e.seq AS e_seq, e.time AS e_time, e.source AS e_source, e.mac AS e_mac, e.type AS e_type,
         e.state AS e_state, e.body AS e_body
       FROM nodes n
       LEFT JOIN LATERAL (SELECT seq, time, source, mac, type, state, body FROM events
         WHERE node_id = n.id ORDER BY seq DESC LIMIT 1) e ON true
       WHERE ($1::text IS NULL OR n.rack = $1) AND ($2::text IS NULL OR n.state = $2)
         AND ($3::bigint IS NULL OR n.id = $3)
       ORDER BY n.id`,
      [filter.rack ?? null, filter.state ?? null, filter.id ?? null],
    );
    return rows.map((r) => ({
      node: nodeRow(r),
      approved: r.approved === true,
      holds: (r.holds as Row[]).map((h) => holdRow({ ...h, node_id: r.id })),
      lastEvent:
        r.e_seq == null
          ? null
          : eventRow({
              seq: r.e_seq,
              time: r.e_time,
              source: r.e_source,
              node_id: r.id,
              mac: r.e_mac,
              type: r.e_type,
              state: r.e_state,
              body: r.e_body,
            }),
    }));
  }

  async flags(nodeId: number): Promise<FlagRow[]> {
    const rows = await this.sql.query(
      "SELECT id, node_id, other_node, kind, detail, created_at FROM identity_flags WHERE node_id = $1 AND resolved_at IS NULL ORDER BY id",
      [nodeId],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      nodeId: Number(r.node_id),
      otherNode: r.other_node == null ? null : Number(r.other_node),
      kind: String(r.kind),
      detail: String(r.detail),
      createdAt: date(r.created_at),
    }));
  }

  // --- reports ------------------------------------------------------------------------------------

  async saveReport(nodeId: number, report: unknown, source?: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query("INSERT INTO reports (node_id, report) VALUES ($1, $2::jsonb)", [
        nodeId,
        JSON.stringify(report),
      ]);
      await event(tx, { type: "node-report", nodeId, source });
    });
  }

  async latestReport(nodeId: number): Promise<unknown | undefined> {
    const rows = await this.sql.query(
      "SELECT report FROM reports WHERE node_id = $1 ORDER BY id DESC LIMIT 1",
      [nodeId],
    );
    return rows[0]?.report;
  }

  // --- approval and holds (hold before destroy) ---------------------------------------------------

  async approve(nodeId: number, by: string, reason?: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO approvals (node_id, approved_by, reason) VALUES ($1, $2, $3)
         ON CONFLICT (node_id) DO UPDATE SET approved_at = now(), approved_by = $2, reason = $3`,
        [nodeId, by, reason ?? null],
      );
      await event(tx, { type: "node-approved", nodeId, source: by, body: { by, reason } });
    });
  }

  async hold(nodeId: number, source: HoldRow["source"], reason: string, by?: string): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query(
        "INSERT INTO holds (node_id, source, reason, held_by) VALUES ($1, $2, $3, $4) RETURNING id",
        [nodeId, source, reason, by ?? null],
      );
      const id = Number(rows[0]?.id);
      await event(tx, { type: "node-held", nodeId, source: by, body: { hold: id, source, reason } });
      return id;
    });
  }

  /** Releases every open hold of the node (and its identity flags: the operator has looked). */
  async release(nodeId: number, by: string): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query(
        "UPDATE holds SET released_at = now(), released_by = $2 WHERE node_id = $1 AND released_at IS NULL RETURNING id",
        [nodeId, by],
      );
      await tx.query(
        "UPDATE identity_flags SET resolved_at = now() WHERE node_id = $1 AND resolved_at IS NULL",
        [nodeId],
      );
      await event(tx, {
        type: "node-released",
        nodeId,
        source: by,
        body: { by, holds: rows.map((r) => Number(r.id)) },
      });
      return rows.length;
    });
  }

  async holds(nodeId: number): Promise<HoldRow[]> {
    const rows = await this.sql.query(
      "SELECT id, node_id, source, reason, held_by, created_at FROM holds WHERE node_id = $1 AND released_at IS NULL ORDER BY id",
      [nodeId],
    );
    return rows.map(holdRow);
  }

  /** The node's approval, if any (who and when). */
  async approval(nodeId: number): Promise<{ by: string; at: Date; reason: string | null } | undefined> {
    const rows = await this.sql.query(
      "SELECT approved_by, approved_at, reason FROM approvals WHERE node_id = $1",
      [nodeId],
    );
    const r = rows[0];
    return r ? { by: String(r.approved_by), at: date(r.approved_at), reason: str(r.reason) } : undefined;
  }

  /** The node's newest events, oldest first (its timeline with each entry's detail). */
  async nodeEvents(nodeId: number, limit = 200): Promise<EventRow[]> {
    const rows = await this.sql.query(
      `SELECT * FROM (SELECT seq, time, source, node_id, mac, type, state, body FROM events
         WHERE node_id = $1 ORDER BY seq DESC LIMIT $2) e ORDER BY seq`,
      [nodeId, limit],
    );
    return rows.map(eventRow);
  }

  /** Approved and not held: the only nodes a rollout may install. */
  async cleared(nodeId: number): Promise<boolean> {
    const rows = await this.sql.query(
      `SELECT EXISTS (SELECT 1 FROM approvals WHERE node_id = $1)
          AND NOT EXISTS (SELECT 1 FROM holds WHERE node_id = $1 AND released_at IS NULL) AS ok`,
      [nodeId],
    );
    return rows[0]?.ok === true;
  }

  // --- assignments --------------------------------------------------------------------------------

  /** The node's answer layers in merge order (site, rack, node), replacing what it had. */
  async assign(nodeId: number, layers: readonly string[], rule?: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query("DELETE FROM assignments WHERE node_id = $1", [nodeId]);
      await tx.query(
        `INSERT INTO assignments (node_id, position, layer, rule)
         SELECT $1, e.ord, e.layer, $3 FROM jsonb_array_elements_text($2::jsonb) WITH ORDINALITY AS e(layer, ord)`,
        [nodeId, JSON.stringify(layers), rule ?? null],
      );
      await event(tx, { type: "node-assigned", nodeId, body: { layers, rule } });
    });
  }

  async assignment(nodeId: number): Promise<{ layers: string[]; rule: string | null }> {
    const rows = await this.sql.query(
      "SELECT layer, rule FROM assignments WHERE node_id = $1 ORDER BY position",
      [nodeId],
    );
    return {
      layers: rows.map((r) => String(r.layer)),
      rule: rows[0]?.rule == null ? null : String(rows[0].rule),
    };
  }

  // --- rollouts -----------------------------------------------------------------------------------

  async createRollout(name: string, params: unknown, status = "created"): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const rows = await tx.query(
        "INSERT INTO rollouts (name, status, params) VALUES ($1, $2, $3::jsonb) RETURNING id",
        [name, status, JSON.stringify(params)],
      );
      const id = Number(rows[0]?.id);
      await event(tx, { type: "rollout", body: { rollout: id, name, status } });
      return id;
    });
  }

  async setRolloutStatus(id: number, status: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query("UPDATE rollouts SET status = $2, updated_at = now() WHERE id = $1", [id, status]);
      await event(tx, { type: "rollout", body: { rollout: id, status } });
    });
  }

  async rollout(id: number): Promise<RolloutRow | undefined> {
    const rows = await this.sql.query(
      "SELECT id, name, status, params, created_at, updated_at FROM rollouts WHERE id = $1",
      [id],
    );
    const r = rows[0];
    return r
      ? {
          id: Number(r.id),
          name: String(r.name),
          status: String(r.status),
          params: r.params,
          createdAt: date(r.created_at),
          updatedAt: date(r.updated_at),
        }
      : undefined;
  }

  async setWave(rolloutId: number, wave: number, status: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO rollout_waves (rollout_id, wave, status, started_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (rollout_id, wave) DO UPDATE SET status = $3,
           ended_at = CASE WHEN $3 IN ('done', 'halted', 'aborted') THEN now() END`,
        [rolloutId, wave, status],
      );
      await event(tx, { type: "rollout-wave", body: { rollout: rolloutId, wave, status } });
    });
  }

  async setRolloutNode(
    rolloutId: number,
    nodeId: number,
    wave: number,
    state: string,
    detail?: string,
  ): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO rollout_nodes (rollout_id, node_id, wave, state, detail) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (rollout_id, node_id) DO UPDATE SET wave = $3, state = $4, detail = $5, updated_at = now()`,
        [rolloutId, nodeId, wave, state, detail ?? null],
      );
      await event(tx, { type: "rollout-node", nodeId, body: { rollout: rolloutId, wave, state, detail } });
    });
  }

  async rolloutNodes(rolloutId: number): Promise<RolloutNodeRow[]> {
    const rows = await this.sql.query(
      "SELECT node_id, wave, state, detail, updated_at FROM rollout_nodes WHERE rollout_id = $1 ORDER BY wave, node_id",
      [rolloutId],
    );
    return rows.map((r) => ({
      nodeId: Number(r.node_id),
      wave: Number(r.wave),
      state: String(r.state),
      detail: r.detail == null ? null : String(r.detail),
      updatedAt: date(r.updated_at),
    }));
  }

  // --- leases -------------------------------------------------------------------------------------

  async putLease(l: LeaseRow): Promise<void> {
    await this.sql.query(
      `INSERT INTO leases (segment, mac, address, expires_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (segment, mac) DO UPDATE SET address = $3, expires_at = $4`,
      [l.segment, l.mac, l.address, l.expiresAt.toISOString()],
    );
  }

  async leases(segment: string): Promise<LeaseRow[]> {
    const rows = await this.sql.query(
      "SELECT segment, mac, address, expires_at FROM leases WHERE segment = $1 ORDER BY mac",
      [segment],
    );
    return rows.map((r) => ({
      segment: String(r.segment),
      mac: String(r.mac),
      address: String(r.address),
      expiresAt: date(r.expires_at),
    }));
  }

  // --- leases -------------------------------------------------------------------------------------

  /**
   * A lease at most one process sharing this store holds (lease.ts): on PostgreSQL a session-level
   * advisory lock on a connection of its own, tried until taken; embedded, always held.
   */
  lease(key: number, o: SessionLeaseOptions = {}): Lease {
    return this.session ? sessionLease(this.session, key, o) : heldLease();
  }

  // --- lifetime -----------------------------------------------------------------------------------

  /** Waits for pending appends, stops the subscriptions, closes the connection. */
  async close(): Promise<void> {
    await this.writer.idle();
    await this.live.close();
    await this.sql.close();
    await this.onClose();
  }
}

async function candidates(tx: Tx, input: IdentityInput): Promise<KnownNode[]> {
  const rows = await tx.query(
    `SELECT n.id, n.uuid, n.serial,
       coalesce((SELECT jsonb_agg(m.mac) FROM node_macs m WHERE m.node_id = n.id), '[]'::jsonb) AS macs
     FROM nodes n
     WHERE n.uuid = $1 OR n.serial = $2
        OR n.id IN (SELECT node_id FROM node_macs WHERE mac IN (SELECT jsonb_array_elements_text($3::jsonb)))
     ORDER BY n.id`,
    [
      normalUuid(input.uuid),
      normalSerial(input.serial),
      JSON.stringify(input.macs.map(normalMac).filter(Boolean)),
    ],
  );
  return rows.map((r) => ({
    id: Number(r.id),
    uuid: r.uuid == null ? null : String(r.uuid),
    serial: r.serial == null ? null : String(r.serial),
    macs: r.macs as string[],
  }));
}

function identityBody(r: Resolution) {
  return { uuid: r.uuid, serial: r.serial, asset: r.asset, macs: r.macs };
}

async function event(tx: Tx, e: EventInput): Promise<void> {
  await tx.query(
    "INSERT INTO events (time, source, node_id, type, body) VALUES (now(), $1, $2, $3, $4::jsonb)",
    [e.source ?? null, e.nodeId ?? null, e.type, JSON.stringify(e.body ?? {})],
  );
}

async function nodeById(q: Tx, id: number): Promise<NodeRow | undefined> {
  const rows = await q.query(`SELECT ${NODE_COLUMNS} FROM nodes n WHERE n.id = $1`, [id]);
  return rows[0] ? nodeRow(rows[0]) : undefined;
}

function nodeRow(r: Row): NodeRow {
  return {
    id: Number(r.id),
    uuid: str(r.uuid),
    serial: str(r.serial),
    assetTag: str(r.asset_tag),
    product: str(r.product),
    rack: str(r.rack),
    state: String(r.state),
    stateSince: date(r.state_since),
    createdAt: date(r.created_at),
    macs: r.macs as string[],
  };
}

function holdRow(r: Row): HoldRow {
  return {
    id: Number(r.id),
    nodeId: Number(r.node_id),
    source: r.source as HoldRow["source"],
    reason: String(r.reason),
    heldBy: r.held_by == null ? null : String(r.held_by),
    createdAt: date(r.created_at),
  };
}

function eventRow(r: Row): EventRow {
  return {
    seq: Number(r.seq),
    time: date(r.time),
    source: str(r.source),
    nodeId: r.node_id == null ? null : Number(r.node_id),
    mac: str(r.mac),
    type: String(r.type),
    state: str(r.state),
    body: r.body,
  };
}

const str = (v: unknown): string | null => (v == null ? null : String(v));
const date = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
