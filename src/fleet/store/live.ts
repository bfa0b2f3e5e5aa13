// Live updates: the events table's trigger sends "lo hi" (the sequence numbers one statement added)
// on channel kvmstrap_events at commit, to every listening connection in every process. Concurrent
// writers (two racks' serve) may commit sequence numbers out of order, so a subscriber reads each
// notified range rather than "everything after the last one", and skips what it already delivered.
import type { Sql } from "./sql.js";
import type { EventRow } from "./types.js";

export const EVENTS_CHANNEL = "kvmstrap_events";

/** Delivered sequence numbers remembered for de-duplication (ranges overlap only briefly). */
const REMEMBER = 100_000;

export class Live {
  private readonly stops = new Set<() => Promise<void>>();

  constructor(
    private readonly sql: Sql,
    private readonly read: (lo: number, hi: number) => Promise<EventRow[]>,
  ) {}

  async subscribe(fn: (events: EventRow[]) => void): Promise<() => Promise<void>> {
    const seen = new Set<number>();
    let highest = 0;
    // One read at a time, in notification order.
    let chain: Promise<void> = Promise.resolve();
    const deliver = (rows: EventRow[]) => {
      const fresh = rows.filter((r) => !seen.has(r.seq));
      for (const r of fresh) {
        seen.add(r.seq);
        if (r.seq > highest) highest = r.seq;
      }
      for (const old of seen) {
        if (seen.size <= REMEMBER) break;
        seen.delete(old);
      }
      if (fresh.length > 0) fn(fresh);
    };
    const enqueue = (lo: number, hi: number) => {
      chain = chain.then(
        () => this.read(lo, hi).then(deliver),
        () => {},
      );
      chain = chain.catch(() => {}); // a failed read is caught up by the next reconnect
    };
    const unlisten = await this.sql.listen(
      EVENTS_CHANNEL,
      (payload) => {
        const [lo, hi] = payload.split(" ").map(Number);
        if (Number.isFinite(lo) && Number.isFinite(hi)) enqueue(lo as number, hi as number);
      },
      // Whatever was committed while the listener was gone (a restarted server).
      () => enqueue(Math.max(1, highest - 10_000), Number.MAX_SAFE_INTEGER),
    );
    const stop = async () => {
      this.stops.delete(stop);
      await unlisten();
      await chain;
    };
    this.stops.add(stop);
    return stop;
  }

  async close(): Promise<void> {
    for (const stop of [...this.stops]) await stop();
  }
}
