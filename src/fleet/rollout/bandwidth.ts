// Per-rack caps on artifact bytes (the kernel, the initrd, the root image): a token bucket per rack,
// pure, with the time passed in, so the HTTP side asks it before each chunk it sends and sleeps for
// the wait it is given. A rack's uplink then carries at most `bytesPerSecond` on average and at most
// `burstBytes` at once, however many of its nodes download together (the MAAS complaint: 15 deploys
// of an 8 GB image saturating a 25 Gbps rack uplink).

export interface BucketConfig {
  bytesPerSecond: number;
  /** The bucket's size: what may go out at once after a quiet spell. */
  burstBytes: number;
}

export interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

export const fullBucket = (c: BucketConfig, now: number): Bucket => ({ tokens: c.burstBytes, at: now });

/** The bucket at `now`: refilled at the rate, never above the burst; a clock going back refills nothing. */
export function refill(b: Bucket, c: BucketConfig, now: number): Bucket {
  if (now <= b.at) return b;
  return { tokens: Math.min(c.burstBytes, b.tokens + ((now - b.at) * c.bytesPerSecond) / 1000), at: now };
}

export interface Grant {
  bucket: Bucket;
  /** Bytes that may go out now (up to what was asked). */
  granted: number;
  /** When less than asked was granted: ms until the rest (up to a burst) is there; 0 otherwise. */
  waitMs: number;
}

export function take(b: Bucket, c: BucketConfig, want: number, now: number): Grant {
  const r = refill(b, c, now);
  const granted = Math.max(0, Math.min(want, Math.floor(r.tokens)));
  const bucket = { tokens: r.tokens - granted, at: r.at };
  const rest = Math.min(want - granted, c.burstBytes);
  const waitMs = rest > 0 ? Math.ceil(((rest - bucket.tokens) * 1000) / c.bytesPerSecond) : 0;
  return { bucket, granted, waitMs: Math.max(0, waitMs) };
}

/** One bucket per rack: takes from the rack's, creating it full on first use. A rack without a cap is not limited. */
export function takeForRack(
  buckets: ReadonlyMap<string, Bucket>,
  caps: ReadonlyMap<string, BucketConfig>,
  rack: string,
  want: number,
  now: number,
): { buckets: Map<string, Bucket>; granted: number; waitMs: number } {
  const cap = caps.get(rack);
  const out = new Map(buckets);
  if (!cap) return { buckets: out, granted: want, waitMs: 0 };
  const g = take(buckets.get(rack) ?? fullBucket(cap, now), cap, want, now);
  out.set(rack, g.bucket);
  return { buckets: out, granted: g.granted, waitMs: g.waitMs };
}
