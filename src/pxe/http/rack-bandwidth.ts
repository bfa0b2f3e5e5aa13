// Per-rack caps on artifact bytes for the HTTP side: one token bucket per rack (the pure
// src/fleet/rollout/bandwidth.ts), shared by every download of that rack's nodes, so a rack's
// uplink carries at most its cap however many nodes fetch the root image at once. The artifact
// path asks before each chunk it sends (`reserve`), or pipes its file stream through `throttle`.
import { Transform } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { type Bucket, type BucketConfig, takeForRack } from "../../fleet/rollout/bandwidth.js";

/** Slices this big at most go out between two looks at the bucket (smooth, and under any sane burst). */
const SLICE = 64 * 1024;

export class RackBandwidth {
  private buckets: Map<string, Bucket> = new Map();

  constructor(
    private readonly caps: ReadonlyMap<string, BucketConfig>,
    private readonly clock: () => number = Date.now,
  ) {
    for (const [rack, c] of caps)
      if (!(c.bytesPerSecond > 0) || !(c.burstBytes >= 1))
        throw new RangeError(
          `rack ${rack}: a bandwidth cap needs bytes per second > 0 and a burst >= 1 byte`,
        );
  }

  /** A cap of `bytesPerSecond` for each rack, with a burst of a quarter second's worth (at least 64 KiB). */
  static of(bytesPerSecond: ReadonlyMap<string, number>, clock?: () => number): RackBandwidth {
    const caps = new Map<string, BucketConfig>();
    for (const [rack, rate] of bytesPerSecond)
      caps.set(rack, { bytesPerSecond: rate, burstBytes: Math.max(SLICE, Math.floor(rate / 4)) });
    return new RackBandwidth(caps, clock);
  }

  limited(rack: string): boolean {
    return this.caps.has(rack);
  }

  /**
   * Takes up to `want` bytes from the rack's bucket without waiting: what may go out now, and how
   * long to wait for more. A rack without a cap gets all of it.
   */
  take(rack: string, want: number): { granted: number; waitMs: number } {
    const r = takeForRack(this.buckets, this.caps, rack, want, this.clock());
    this.buckets = r.buckets;
    return { granted: r.granted, waitMs: r.waitMs };
  }

  /** Resolves once `bytes` may go out for `rack` (waiting as the bucket says); `signal` gives up. */
  async reserve(rack: string, bytes: number, signal?: AbortSignal): Promise<void> {
    let left = bytes;
    while (left > 0) {
      const g = this.take(rack, Math.min(left, SLICE));
      left -= g.granted;
      if (left > 0 && g.granted === 0) await sleep(Math.max(1, g.waitMs), undefined, { signal });
    }
  }

  /** A pass-through stream that lets a chunk through only as fast as the rack's cap allows. */
  throttle(rack: string): Transform {
    if (!this.limited(rack)) return new Transform({ transform: (chunk, _enc, cb) => cb(null, chunk) });
    const abort = new AbortController();
    const t: Transform = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        void (async () => {
          for (let at = 0; at < chunk.length; ) {
            const g = this.take(rack, Math.min(SLICE, chunk.length - at));
            if (g.granted > 0) {
              t.push(chunk.subarray(at, at + g.granted));
              at += g.granted;
            } else await sleep(Math.max(1, g.waitMs), undefined, { signal: abort.signal });
          }
        })().then(
          () => cb(),
          (e) => cb(e),
        );
      },
      destroy: (e, cb) => {
        abort.abort();
        cb(e);
      },
    });
    return t;
  }
}
