// Event ingest by group commit: each append waits for the transaction that holds its event, and
// every event appended while one transaction runs goes into the next (core/coalesce.ts), so a
// thousand nodes reporting at once cost a few commits, not a thousand. An append resolves with its
// sequence number only after COMMIT: an acknowledged event survives a kill -9 of the writer, and
// on PostgreSQL a restart of the server (sql.ts waits for it and never commits a batch twice).
import { Coalescer } from "../../core/coalesce.js";
import type { Sql } from "./sql.js";
import type { EventInput } from "./types.js";

interface Pending {
  event: EventInput;
  seq?: number;
  /** Why this event alone was refused (its batch went in without it). */
  error?: unknown;
}

/**
 * One statement per batch: the events in input order (ORDER BY ord, so the identity hands out
 * sequence numbers in that order), the node each MAC belongs to, the timeline rows of the events
 * that moved a node, and each moved node's current state (its newest event in the batch).
 */
const INSERT_BATCH = `
WITH input AS (
  SELECT e.ord, e.v FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, ord)
), ins AS (
  INSERT INTO events (time, source, node_id, mac, type, state, body)
  SELECT coalesce((i.v->>'time')::timestamptz, now()), i.v->>'source',
         coalesce((i.v->>'nodeId')::bigint, m.node_id), i.v->>'mac', i.v->>'type', i.v->>'state',
         coalesce(i.v->'body', '{}'::jsonb)
  FROM input i LEFT JOIN node_macs m ON m.mac = i.v->>'mac'
  ORDER BY i.ord
  RETURNING seq, node_id, state, time
), tl AS (
  INSERT INTO timelines (node_id, event_seq, state, entered_at)
  SELECT node_id, seq, state, time FROM ins WHERE state IS NOT NULL AND node_id IS NOT NULL
), moved AS (
  UPDATE nodes n SET state = x.state, state_since = x.time, updated_at = now()
  FROM (SELECT DISTINCT ON (node_id) node_id, state, time FROM ins
        WHERE state IS NOT NULL AND node_id IS NOT NULL ORDER BY node_id, seq DESC) x
  WHERE n.id = x.node_id
)
SELECT seq FROM ins ORDER BY seq`;

export interface WriterOptions {
  /**
   * PGlite only (single-user PostgreSQL has no autovacuum): VACUUM the nodes table after this many
   * events that moved a node (each rewrites its node's row). Default 20,000.
   */
  vacuumEvery?: number;
}

export class EventWriter {
  private pending: Pending[] = [];
  private readonly coalescer: Coalescer;
  /** Batches committed and events in them (for metrics and the bench). */
  batches = 0;
  events = 0;
  private moves = 0;
  private maintenance: Promise<void> = Promise.resolve();

  constructor(
    private readonly sql: Sql,
    private readonly o: WriterOptions = {},
  ) {
    this.coalescer = new Coalescer(() => this.flush());
  }

  /** Resolves with the event's sequence number once it is committed. */
  async append(event: EventInput): Promise<number> {
    if (typeof event.type !== "string" || event.type === "") throw new TypeError("an event needs a type");
    if (event.time !== undefined && Number.isNaN(new Date(event.time).getTime()))
      throw new TypeError(`event time ${String(event.time)} is not a time`);
    const p: Pending = { event };
    this.pending.push(p);
    await this.coalescer.request();
    if (p.error !== undefined) throw p.error;
    if (p.seq === undefined) throw new Error("internal: an event's batch committed without it");
    return p.seq;
  }

  /** Waits for every append made so far (at close). */
  async idle(): Promise<void> {
    await this.coalescer.idle();
    await this.maintenance;
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    try {
      await this.insert(batch);
    } catch (e) {
      // The store is there (sql.ts waited out lost connections) but something in the batch was
      // refused (a node id that no longer exists): one at a time, so only that event fails.
      if (batch.length === 1) throw e;
      for (const p of batch)
        await this.insert([p]).catch((err: unknown) => {
          p.error = err;
        });
    }
  }

  private async insert(batch: Pending[]): Promise<void> {
    const json = JSON.stringify(batch.map((p) => toJson(p.event)));
    const rows = await this.sql.transaction((tx) => tx.query<{ seq: string | number }>(INSERT_BATCH, [json]));
    if (rows.length !== batch.length)
      throw new Error(`internal: ${batch.length} events in, ${rows.length} sequence numbers out`);
    rows.forEach((r, i) => {
      (batch[i] as Pending).seq = Number(r.seq);
    });
    this.batches++;
    this.events += batch.length;
    this.moves += batch.filter((p) => p.event.state !== undefined).length;
    if (this.sql.driver === "pglite" && this.moves >= (this.o.vacuumEvery ?? 20_000)) {
      this.moves = 0;
      // Queued behind this batch, not awaited by its callers; PGlite runs one statement at a time.
      this.maintenance = this.maintenance.then(() => this.sql.exec("VACUUM (ANALYZE) nodes").catch(() => {}));
    }
  }
}

function toJson(e: EventInput): Record<string, unknown> {
  return {
    type: e.type,
    time: e.time instanceof Date ? e.time.toISOString() : e.time,
    source: e.source,
    nodeId: e.nodeId,
    mac: e.mac,
    state: e.state,
    body: e.body ?? {},
  };
}
