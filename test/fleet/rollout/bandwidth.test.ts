// The per-rack token bucket for artifact bytes: a burst, then the rate; the wait it gives is the
// time until the rest is there; racks do not share; over any span, what it grants never exceeds the
// burst plus the rate times the span, however many downloads ask at once.
import { describe, expect, it } from "vitest";
import { fullBucket, take, takeForRack } from "../../../src/fleet/rollout/bandwidth.js";

const cap = { bytesPerSecond: 1_000_000, burstBytes: 4_000_000 };

describe("artifact bandwidth token bucket", () => {
  it("grants a burst, then at the rate, and says how long to wait for the rest", () => {
    let b = fullBucket(cap, 0);
    let g = take(b, cap, 3_000_000, 0);
    expect(g).toMatchObject({ granted: 3_000_000, waitMs: 0 });
    b = g.bucket;
    g = take(b, cap, 2_000_000, 0);
    expect(g.granted).toBe(1_000_000);
    expect(g.waitMs).toBe(1000); // the other 1 MB comes in at 1 MB/s
    g = take(g.bucket, cap, 1_000_000, 1000);
    expect(g).toMatchObject({ granted: 1_000_000, waitMs: 0 });
    // Never above the burst, however long it was quiet; a clock going back refills nothing.
    expect(take(g.bucket, cap, 10_000_000, 60_000).granted).toBe(4_000_000);
    expect(take({ tokens: 0, at: 5000 }, cap, 1, 1000).granted).toBe(0);
  });

  it("keeps racks apart, and leaves a rack without a cap unlimited", () => {
    const caps = new Map([["r1", cap]]);
    let s = takeForRack(new Map(), caps, "r1", 4_000_000, 0);
    expect(s.granted).toBe(4_000_000);
    s = takeForRack(s.buckets, caps, "r1", 1, 0);
    expect(s.granted).toBe(0);
    expect(takeForRack(s.buckets, caps, "r2", 8e9, 0)).toMatchObject({ granted: 8e9, waitMs: 0 });
  });

  it("never lets 15 downloads together past burst + rate x time", () => {
    let b = fullBucket(cap, 0);
    let sent = 0;
    for (let t = 0; t <= 60_000; t += 37) {
      for (let node = 0; node < 15; node++) {
        const g = take(b, cap, 256 * 1024, t);
        b = g.bucket;
        sent += g.granted;
      }
      expect(sent).toBeLessThanOrEqual(cap.burstBytes + (t / 1000) * cap.bytesPerSecond);
    }
    expect(sent).toBeGreaterThan(0.95 * (cap.burstBytes + 60 * cap.bytesPerSecond));
  });
});
