// The rollout runner's queries: a rollout with its wave and event cursor, its nodes with what the
// decision needs (rack, approval, open holds, state, wave, times), and one transaction that saves
// every change of a step together with an event for each, so the event stream (the dashboard, a
// second serve, the CLI's --follow) sees every move and a restart finds all of it or none.
import type { Sql, Tx } from "./sql.js";
import type { FleetStore } from "./store.js";

/** Rollout statuses that are over: at most one rollout that is not is active at a time. */
export const FINAL_STATUSES = ["aborted", "done"] as const;

/** Serialises "is one active? then create" across the serves sharing a PostgreSQL. */
const ROLLOUT_LOCK = 4_711_003;

export interface StoredRollout {
  id: number;
  name: string;
  status: string;
  params: unknown;
  wave: number;
  /** The last event the runner applied to the rollout's nodes. */
  eventSeq: number;
  /** The row's version (PostgreSQL's xmin): every save changes it. */
  version: string;
  createdAt: Date;
  updatedAt: Date;
}

export interface StoredRolloutNode {
  nodeId: number;
  rack: string | null;
  approved: boolean;
  /** The reason of its oldest open hold; null when it has none. */
  hold: string | null;
  /** Who placed that hold (operator, answer, rule...); null when it has none. */
  holdSource: string | null;
  state: string;
  wave: number | null;
  detail: string | null;
  /** When it entered its state (ms). */
  stateSince: number;
  /** When this rollout powered it on (ms); null: never. */
  poweredOnAt: number | null;
}

export interface NodeChange {
  nodeId: number;
  state: string;
  wave: number | null;
  detail: string | null;
  stateSince: number;
  poweredOnAt: number | null;
  /** What moved it (a transition table event), for the event body. */
  event: string;
}

export interface RolloutChange {
  id: number;
  /**
   * The rollout's row version the change was decided on (StoredRollout.version): the save is
   * refused (StaleRollout, nothing written) when anyone saved the rollout since, e.g. an operator's
   * pause through another rack's serve, or a runner that lost its lease in the middle of a step.
   */
  version?: string;
  status?: string;
  wave?: number;
  eventSeq?: number;
  /** What moved the rollout, one event row each (start, canary-passed, wave-done, ...). */
  events?: { event: string; status: string; wave: number; by?: string; detail?: string }[];
  nodes?: NodeChange[];
}

/** Another rollout is active: the route's 409. */
export class RolloutConflict extends Error {
  override name = "RolloutConflict";
}

/** The rollout moved since the change was decided: read it again and decide again. */
export class StaleRollout extends Error {
  override name = "StaleRollout";
}

type Row = Record<string, unknown>;

export class RolloutStore {
  private readonly sql: Sql;
  constructor(
    store: FleetStore,
    private readonly source = "rollout",
  ) {
    this.sql = store.sql;
  }

  /**
   * A new rollout over `nodeIds`, every node waiting (the runner turns held ones to held on its
   * first step). Its event cursor starts at the newest event: what happened before is history.
   */
  async create(name: string, params: unknown, nodeIds: readonly number[], now: number): Promise<number> {
    return this.sql.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [ROLLOUT_LOCK]);
      const active = await tx.query(
        "SELECT id, name, status FROM rollouts WHERE status NOT IN ('aborted', 'done') ORDER BY id LIMIT 1",
      );
      if (active[0])
        throw new RolloutConflict(
          `rollout ${active[0].id} (${active[0].name}) is ${active[0].status}: abort it or let it finish first`,
        );
      const seq = await tx.query("SELECT coalesce(max(seq), 0) AS seq FROM events");
      const rows = await tx.query(
        "INSERT INTO rollouts (name, status, params, event_seq) VALUES ($1, 'pending', $2::jsonb, $3) RETURNING id",
        [name, JSON.stringify(params), Number(seq[0]?.seq ?? 0)],
      );
      const id = Number(rows[0]?.id);
      await tx.query(
        `INSERT INTO rollout_nodes (rollout_id, node_id, wave, state, state_since)
         SELECT $1, n::bigint, NULL, 'waiting', $3 FROM jsonb_array_elements_text($2::jsonb) AS e(n)`,
        [id, JSON.stringify(nodeIds.map(String)), new Date(now).toISOString()],
      );
      await this.event(tx, {
        type: "rollout",
        body: { rollout: id, name, status: "pending", event: "create" },
      });
      return id;
    });
  }

  async active(): Promise<StoredRollout | undefined> {
    const rows = await this.sql.query(
      `SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE status NOT IN ('aborted', 'done') ORDER BY id LIMIT 1`,
    );
    return rows[0] ? rolloutRow(rows[0]) : undefined;
  }

  /** The active rollout, or else the newest one. */
  async current(): Promise<StoredRollout | undefined> {
    return (
      (await this.active()) ??
      (await this.sql.query(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts ORDER BY id DESC LIMIT 1`)).map(
        rolloutRow,
      )[0]
    );
  }

  async get(id: number): Promise<StoredRollout | undefined> {
    const rows = await this.sql.query(`SELECT ${ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1`, [id]);
    return rows[0] ? rolloutRow(rows[0]) : undefined;
  }

  async nodes(id: number): Promise<StoredRolloutNode[]> {
    const rows = await this.sql.query(
      `SELECT r.node_id, n.rack, r.state, r.wave, r.detail, r.state_since, r.powered_on_at,
         EXISTS (SELECT 1 FROM approvals a WHERE a.node_id = r.node_id) AS approved,
         (SELECT h.reason FROM holds h WHERE h.node_id = r.node_id AND h.released_at IS NULL
          ORDER BY h.id LIMIT 1) AS hold,
         (SELECT h.source FROM holds h WHERE h.node_id = r.node_id AND h.released_at IS NULL
          ORDER BY h.id LIMIT 1) AS hold_source
       FROM rollout_nodes r JOIN nodes n ON n.id = r.node_id WHERE r.rollout_id = $1 ORDER BY r.node_id`,
      [id],
    );
    return rows.map((r) => ({
      nodeId: Number(r.node_id),
      rack: r.rack == null ? null : String(r.rack),
      approved: r.approved === true,
      hold: r.hold == null ? null : String(r.hold),
      holdSource: r.hold_source == null ? null : String(r.hold_source),
      state: String(r.state),
      wave: r.wave == null ? null : Number(r.wave),
      detail: r.detail == null ? null : String(r.detail),
      stateSince: ms(r.state_since) ?? 0,
      poweredOnAt: ms(r.powered_on_at),
    }));
  }

  /**
   * Where a node stands in the active rollout (undefined: in none). The answer route asks this at
   * every poll, so it reads one row, not the rollout.
   */
  async placeOf(
    nodeId: number,
  ): Promise<{ rolloutId: number; name: string; status: string; state: string } | undefined> {
    const rows = await this.sql.query(
      `SELECT ro.id, ro.name, ro.status, r.state FROM rollout_nodes r JOIN rollouts ro ON ro.id = r.rollout_id
       WHERE r.node_id = $1 AND ro.status NOT IN ('aborted', 'done') ORDER BY ro.id LIMIT 1`,
      [nodeId],
    );
    const r = rows[0];
    return r
      ? { rolloutId: Number(r.id), name: String(r.name), status: String(r.status), state: String(r.state) }
      : undefined;
  }

  /** Events after `seq` that concern a node (the runner maps them to node rollout events). */
  async nodeEventsSince(
    seq: number,
    limit = 1000,
  ): Promise<
    { seq: number; nodeId: number | null; type: string; state: string | null; source: string | null }[]
  > {
    const rows = await this.sql.query(
      "SELECT seq, node_id, type, state, source FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
      [seq, limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      nodeId: r.node_id == null ? null : Number(r.node_id),
      type: String(r.type),
      state: r.state == null ? null : String(r.state),
      source: r.source == null ? null : String(r.source),
    }));
  }

  /** The rollout's own events, newest last (at most `limit`). */
  async events(id: number, limit = 50): Promise<{ time: Date; event: string; detail: string }[]> {
    const rows = await this.sql.query(
      `SELECT time, node_id, type, body FROM (
         SELECT seq, time, node_id, type, body FROM events
         WHERE type IN ('rollout', 'rollout-node') AND body->>'rollout' = $1 ORDER BY seq DESC LIMIT $2
       ) e ORDER BY seq`,
      [String(id), limit],
    );
    return rows.map((r) => {
      const b = (r.body ?? {}) as Record<string, unknown>;
      const what = r.type === "rollout-node" ? `node ${r.node_id} ${b.state}` : `rollout ${b.status}`;
      return {
        time: r.time instanceof Date ? r.time : new Date(String(r.time)),
        event: String(b.event ?? r.type),
        detail: [what, b.wave == null ? "" : `wave ${b.wave}`, b.detail ?? "", b.by ? `by ${b.by}` : ""]
          .filter(Boolean)
          .join(", "),
      };
    });
  }

  /** Every change of one step in one transaction, each with its event. */
  async save(c: RolloutChange): Promise<void> {
    await this.sql.transaction(async (tx) => {
      const updated = await tx.query(
        `UPDATE rollouts SET status = coalesce($2, status), wave = coalesce($3, wave),
           event_seq = greatest(event_seq, coalesce($4, 0)), updated_at = now()
         WHERE id = $1 AND ($5::text IS NULL OR xmin::text = $5) RETURNING id`,
        [c.id, c.status ?? null, c.wave ?? null, c.eventSeq ?? null, c.version ?? null],
      );
      if (updated.length === 0 && c.version !== undefined)
        throw new StaleRollout(`rollout ${c.id} changed since this was decided`);
      for (const e of c.events ?? []) {
        await tx.query(
          `INSERT INTO rollout_waves (rollout_id, wave, status, started_at) VALUES ($1, $2, $3, now())
           ON CONFLICT (rollout_id, wave) DO UPDATE SET status = $3,
             ended_at = CASE WHEN $3 IN ('done', 'halted', 'canary-halted', 'aborted') THEN now() END`,
          [c.id, e.wave, e.status],
        );
        await this.event(tx, { type: "rollout", body: { rollout: c.id, ...e } });
      }
      for (const n of c.nodes ?? []) {
        await tx.query(
          `UPDATE rollout_nodes SET state = $3, wave = $4, detail = $5, state_since = $6, powered_on_at = $7,
             updated_at = now() WHERE rollout_id = $1 AND node_id = $2`,
          [
            c.id,
            n.nodeId,
            n.state,
            n.wave,
            n.detail,
            new Date(n.stateSince).toISOString(),
            n.poweredOnAt === null ? null : new Date(n.poweredOnAt).toISOString(),
          ],
        );
        await this.event(tx, {
          type: "rollout-node",
          nodeId: n.nodeId,
          body: { rollout: c.id, wave: n.wave, state: n.state, event: n.event, detail: n.detail },
        });
      }
    });
  }

  // --- power settings (they may hold a BMC password: never in an event) ------------------------------

  async setPower(nodeId: number, settings: unknown): Promise<void> {
    await this.sql.query(
      `INSERT INTO node_power (node_id, settings) VALUES ($1, $2::jsonb)
       ON CONFLICT (node_id) DO UPDATE SET settings = $2::jsonb, updated_at = now()`,
      [nodeId, JSON.stringify(settings)],
    );
  }

  async power(nodeId: number): Promise<unknown | undefined> {
    const rows = await this.sql.query("SELECT settings FROM node_power WHERE node_id = $1", [nodeId]);
    return rows[0]?.settings;
  }

  private async event(tx: Tx, e: { type: string; nodeId?: number; body: unknown }): Promise<void> {
    await tx.query(
      "INSERT INTO events (time, source, node_id, type, body) VALUES (now(), $1, $2, $3, $4::jsonb)",
      [this.source, e.nodeId ?? null, e.type, JSON.stringify(e.body)],
    );
  }
}

const ROLLOUT_COLUMNS =
  "id, name, status, params, wave, event_seq, created_at, updated_at, xmin::text AS version";

function rolloutRow(r: Row): StoredRollout {
  return {
    id: Number(r.id),
    name: String(r.name),
    status: String(r.status),
    params: r.params,
    wave: Number(r.wave),
    eventSeq: Number(r.event_seq),
    version: String(r.version),
    createdAt: r.created_at instanceof Date ? r.created_at : new Date(String(r.created_at)),
    updatedAt: r.updated_at instanceof Date ? r.updated_at : new Date(String(r.updated_at)),
  };
}

function ms(v: unknown): number | null {
  if (v == null) return null;
  return (v instanceof Date ? v : new Date(String(v))).getTime();
}
