// The per-rack artifact cap in a real HTTP transfer: a server streams a file through the rack's
// throttle and curl downloads it. Only lower bounds on the time are asserted (the machine is
// shared and loaded: slower is always possible, faster than the cap is the bug).
import { execFile } from "node:child_process";
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RackBandwidth } from "../../../src/pxe/http/rack-bandwidth.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const dir = mkdtempSync(path.join(os.tmpdir(), `kvmstrap-bw-${process.pid}-`));
const file = path.join(dir, "root.img");
let server: http.Server;
let base: string;
const bandwidth = RackBandwidth.of(new Map([["r1", MiB]]));

beforeAll(async () => {
  writeFileSync(file, Buffer.alloc(2 * MiB, 7));
  // /r1/root.img: through rack r1's cap (1 MiB/s); /r2/...: a rack without one.
  server = http.createServer((req, res) => {
    const rack = req.url?.split("/")[1] ?? "";
    res.writeHead(200, { "content-length": String(2 * MiB) });
    createReadStream(file, { highWaterMark: MiB }).pipe(bandwidth.throttle(rack)).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

async function curl(url: string): Promise<{ bytes: number; seconds: number }> {
  const { stdout } = await run("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-w",
    "%{size_download} %{time_total}",
    url,
  ]);
  const [bytes, seconds] = stdout.trim().split(" ").map(Number);
  return { bytes: bytes ?? 0, seconds: seconds ?? 0 };
}

describe("the per-rack artifact cap over HTTP", () => {
  it("takes about 2 s for 2 MiB under a 1 MiB/s cap", async () => {
    const r = await curl(`${base}/r1/root.img`);
    expect(r.bytes).toBe(2 * MiB);
    // 2 MiB less the 256 KiB burst at 1 MiB/s: 1.75 s at the very least.
    expect(r.seconds).toBeGreaterThanOrEqual(1.7);
  }, 30_000);

  it("shares the cap between downloads of one rack", async () => {
    const t0 = Date.now();
    const both = await Promise.all([curl(`${base}/r1/root.img`), curl(`${base}/r1/root.img`)]);
    expect(both.map((r) => r.bytes)).toEqual([2 * MiB, 2 * MiB]);
    // 4 MiB through one 1 MiB/s bucket (already drained by the test before, refilled at most a burst).
    expect((Date.now() - t0) / 1000).toBeGreaterThanOrEqual(3.7);
  }, 30_000);

  it("leaves a rack without a cap alone", async () => {
    const r = await curl(`${base}/r2/root.img`);
    expect(r.bytes).toBe(2 * MiB);
  }, 30_000);

  it("refuses a cap that cannot be one", () => {
    expect(() => RackBandwidth.of(new Map([["r1", 0]]))).toThrow(/r1: a bandwidth cap/);
  });
});
