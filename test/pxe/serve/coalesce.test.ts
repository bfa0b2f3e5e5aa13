// Group commit (src/core/coalesce.ts), which the boot server's installed-node file and lease file
// use: one write in flight, the next one carries every change made meanwhile, and no caller is
// answered before a write holding its change has finished.
import { describe, expect, it } from "vitest";
import { Coalescer } from "../../../src/core/coalesce.js";

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

function slowStore() {
  let state = 0;
  const saved: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const c = new Coalescer(async () => {
    const snapshot = state; // read before the first await, as the real writers do
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    await tick(20);
    saved.push(snapshot);
    inFlight--;
  });
  return {
    c,
    saved,
    change: () => ++state,
    maxInFlight: () => maxInFlight,
  };
}

describe("group commit", () => {
  it("folds 100 changes made during one write into one more write", async () => {
    const s = slowStore();
    const acks: Promise<void>[] = [];
    s.change();
    acks.push(s.c.request());
    await tick(5); // the first write is running now
    for (let i = 0; i < 99; i++) {
      s.change();
      acks.push(s.c.request());
    }
    await Promise.all(acks);
    expect(s.saved).toEqual([1, 100]);
    expect(s.maxInFlight()).toBe(1);
  });

  it("answers each caller only after a write that holds its change", async () => {
    const s = slowStore();
    const seen: number[] = [];
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      const mine = s.change();
      calls.push(
        s.c.request().then(() => {
          seen.push(Math.max(...s.saved) >= mine ? 1 : 0);
        }),
      );
      await tick(i % 3 === 0 ? 7 : 1);
    }
    await Promise.all(calls);
    expect(seen).toEqual(new Array(20).fill(1));
    expect(s.maxInFlight()).toBe(1);
    expect(s.saved.length).toBeLessThan(20);
    expect(s.saved.at(-1)).toBe(20);
  });

  it("a failed write fails its callers only; the next write still runs", async () => {
    let fail = true;
    const c = new Coalescer(async () => {
      await tick(5);
      if (fail) throw new Error("disk full");
    });
    const first = c.request();
    await tick(1);
    const second = c.request();
    fail = true;
    await expect(first).rejects.toThrow("disk full");
    fail = false;
    await expect(second).resolves.toBeUndefined();
    await c.idle();
  });
});
