// The two drivers behind one small interface: embedded PGlite (one process owns the directory) and
// node-postgres against a real PostgreSQL (many processes, one per rack). The store speaks only
// this, so one schema and one set of queries serve both.
import type { PGlite } from "@electric-sql/pglite";
import type pg from "pg";

export interface Tx {
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

export interface Sql extends Tx {
  readonly driver: "pglite" | "postgres";
  /**
   * `fn` runs in one transaction. On PostgreSQL a connection lost on the way (a restarted server)
   * is waited out and `fn` run again, so it must only issue queries; a commit whose outcome the
   * lost connection hid is looked up (txid_status), never guessed.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Calls `fn` with each notification's payload; `onReconnect` after a lost listener is back. */
  listen(
    channel: string,
    fn: (payload: string) => void,
    onReconnect?: () => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export function pgliteSql(db: PGlite): Sql {
  const wrap = (q: Pick<PGlite, "query" | "exec">): Tx => ({
    query: async <T>(text: string, params?: unknown[]) => (await q.query<T>(text, params)).rows,
    exec: async (text: string) => {
      await q.exec(text);
    },
  });
  return {
    driver: "pglite",
    ...wrap(db),
    transaction: (fn) => db.transaction((tx) => fn(wrap(tx))),
    listen: async (channel, fn) => {
      const stop = await db.listen(channel, fn);
      return () => stop();
    },
    close: () => db.close(),
  };
}

/** Errors that mean "the server or the connection went away", after which a retry may work. */
export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: string; message?: string } | undefined;
  const code = err?.code ?? "";
  if (
    ["ECONNREFUSED", "ECONNRESET", "ENOENT", "EPIPE", "ETIMEDOUT", "57P01", "57P02", "57P03"].includes(code)
  )
    return true;
  if (code.startsWith("08")) return true;
  const m = err?.message ?? "";
  return /Connection terminated|not queryable|connection error|terminating connection/i.test(m);
}

const ignore = () => {};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface PostgresSqlOptions {
  /** How long a lost server is waited for before a transaction fails (ms, default 60 s). */
  reconnectMs?: number;
}

export function postgresSql(
  pool: pg.Pool,
  Client: typeof pg.Client,
  url: string,
  o: PostgresSqlOptions = {},
): Sql {
  const reconnectMs = o.reconnectMs ?? 60_000;
  const heard = new WeakSet<pg.PoolClient>();
  // An idle pooled connection that the server closes emits this; the next query simply reconnects.
  pool.on("error", () => {});
  const wrap = (c: pg.Pool | pg.PoolClient): Tx => ({
    query: async <T>(text: string, params?: unknown[]) =>
      (await c.query(text, params as unknown[])).rows as T[],
    exec: async (text: string) => {
      await c.query(text);
    },
  });

  /** Asks the server, waiting for it to be back, whether a transaction committed. */
  async function committed(xid: string, deadline: number): Promise<boolean> {
    for (;;) {
      try {
        const r = await pool.query("SELECT txid_status($1::bigint) AS s", [xid]);
        return r.rows[0]?.s === "committed";
      } catch (e) {
        // A server that crashed before anything of the transaction reached its WAL restarts with
        // an older next xid: "transaction ID N is in the future", so it never committed.
        if ((e as { code?: string }).code === "22023" && /in the future/.test((e as Error).message))
          return false;
        if (!isConnectionError(e) || Date.now() > deadline) throw e;
        await sleep(200);
      }
    }
  }

  async function transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const deadline = Date.now() + reconnectMs;
    for (let attempt = 0; ; attempt++) {
      let client: pg.PoolClient | undefined;
      let xid: string | undefined;
      let out: T | undefined;
      let committing = false;
      try {
        client = await pool.connect();
        // A checked-out client whose server goes away emits "error": the query in flight fails
        // with it and is handled below; unheard, it would kill the process.
        if (!heard.has(client)) {
          heard.add(client);
          client.on("error", ignore);
        }
        await client.query("BEGIN");
        xid = (await client.query("SELECT txid_current()::text AS x")).rows[0].x as string;
        out = await fn(wrap(client));
        committing = true;
        await client.query("COMMIT");
        client.release();
        return out;
      } catch (e) {
        const lost = isConnectionError(e);
        if (client) {
          if (lost) client.release(e as Error);
          else {
            await client.query("ROLLBACK").catch(() => {});
            client.release();
          }
        }
        if (!lost || Date.now() > deadline) throw e;
        if (committing && xid && (await committed(xid, deadline))) return out as T;
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
  }

  async function listen(channel: string, fn: (payload: string) => void, onReconnect?: () => void) {
    let stopped = false;
    let client: pg.Client | undefined;
    const connect = async (): Promise<void> => {
      for (let attempt = 0; !stopped; attempt++) {
        const c = new Client({ connectionString: url });
        c.on("error", () => {}); // "end" follows and reconnects
        try {
          await c.connect();
          c.on("notification", (n) => {
            if (n.channel === channel) fn(n.payload ?? "");
          });
          await c.query(`LISTEN ${quoteIdent(channel)}`);
          if (stopped) {
            await c.end().catch(() => {});
            return;
          }
          client = c;
          c.once("end", () => {
            client = undefined;
            if (stopped) return;
            void connect().then(() => onReconnect?.());
          });
          return;
        } catch {
          await c.end().catch(() => {});
          await sleep(Math.min(1000, 50 * 2 ** attempt));
        }
      }
    };
    await connect();
    return async () => {
      stopped = true;
      await client?.end().catch(() => {});
    };
  }

  return {
    driver: "postgres",
    ...wrap(pool),
    transaction,
    listen,
    close: () => pool.end(),
  };
}

function quoteIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}
