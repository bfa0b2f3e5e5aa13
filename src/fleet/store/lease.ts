// A lease held by at most one process of the region: on PostgreSQL a session-level advisory lock
// on a connection of its own, kept for the process's life. The server releases it when that session
// ends (the process died, kill -9 included, or the connection dropped), and another process's next
// try takes it. A lease whose connection is lost is lost at once, even if the server has not yet
// noticed: the holder stops, and tries again like everyone else. On PGlite (one process by
// construction) the lease is always held.

/** The lease of the region's one rollout runner (the advisory lock key; 4_711_001-003 are taken). */
export const ROLLOUT_RUNNER_LEASE = 4_711_004;

/** The part of node-postgres's Client the lease uses (a session of its own, not the pool's). */
export interface SessionClient {
  connect(): Promise<unknown>;
  query(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
  on(event: "error" | "end", fn: (...a: unknown[]) => void): unknown;
}

export interface Lease {
  /** Whether this process holds the lease now. */
  readonly held: boolean;
  /** Called with true when the lease is taken, false when it is lost. */
  onChange(fn: (held: boolean) => void): void;
  /** Gives the lease up (ends its session). */
  close(): Promise<void>;
}

/** One process by construction: the lease is its own. */
export function heldLease(): Lease {
  return { held: true, onChange: () => {}, close: async () => {} };
}

export interface SessionLeaseOptions {
  /** How often a process without the lease tries again, and the holder checks its session (ms). */
  retryMs?: number;
}

/**
 * `pg_try_advisory_lock(key)` on a session from `connect`, tried every `retryMs` until taken; while
 * held, the session is checked as often (a dead one is noticed within that time, and the lease
 * with it). Takeover after the holder's death: the server ends its session, then at most `retryMs`.
 */
export function sessionLease(connect: () => SessionClient, key: number, o: SessionLeaseOptions = {}): Lease {
  const retryMs = o.retryMs ?? 2000;
  const listeners: ((held: boolean) => void)[] = [];
  let held = false;
  let closed = false;
  let client: SessionClient | undefined;
  let wake: (() => void) | undefined;

  const set = (h: boolean) => {
    if (h === held) return;
    held = h;
    for (const fn of listeners) fn(h);
  };
  const drop = (c: SessionClient) => {
    if (client !== c) return;
    client = undefined;
    set(false);
    void c.end().catch(() => {});
  };
  const once = async () => {
    let c = client;
    if (!c) {
      const fresh = connect();
      fresh.on("error", () => drop(fresh)); // "end" follows; unheard, it would kill the process
      fresh.on("end", () => drop(fresh));
      client = fresh;
      c = fresh;
      await fresh.connect();
    }
    if (held) await c.query("SELECT 1");
    else {
      const r = await c.query("SELECT pg_try_advisory_lock($1) AS ok", [key]);
      if (r.rows[0]?.ok === true && client === c && !closed) set(true);
    }
  };
  const loop = async () => {
    while (!closed) {
      try {
        await once();
      } catch {
        if (client) drop(client);
      }
      if (closed) break;
      await new Promise<void>((r) => {
        const t = setTimeout(r, retryMs);
        t.unref();
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  };
  const running = loop().then(async () => {
    // A session opened by a try that close() did not see: ended, its lock with it.
    const c = client;
    client = undefined;
    await c?.end().catch(() => {});
  });

  return {
    get held() {
      return held;
    },
    onChange: (fn) => {
      listeners.push(fn);
    },
    close: async () => {
      closed = true;
      wake?.();
      // Ended first: a try under way (a connect to a server that does not answer) ends with it.
      const c = client;
      client = undefined;
      set(false);
      await c?.end().catch(() => {});
      await running;
    },
  };
}
