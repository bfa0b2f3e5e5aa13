// 100,000 malformed packets through decode, the boot policy and both responders: nothing throws,
// every rejection is a typed decode error, and the whole run stays within a time bound.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { decideBoot } from "../../../src/pxe/boot-policy.js";
import { describeClient } from "../../../src/pxe/dhcp4/client.js";
import { respondFull } from "../../../src/pxe/dhcp4/full.js";
import { LeaseTable, parseRange } from "../../../src/pxe/dhcp4/leases.js";
import { decodePacket, encodePacket } from "../../../src/pxe/dhcp4/packet.js";
import { respondProxy } from "../../../src/pxe/dhcp4/proxy.js";
import { readPcapUdp } from "./pcap.js";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const seeds = ["seabios-ipxe.pcap", "ovmf-pxe.pcap", "ovmf-http.pcap"].flatMap((f) =>
  readPcapUdp(path.join(fixtures, f)).map((r) => r.payload),
);

/** xorshift32: reproducible without a dependency. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x % n;
  };
}

function randomBytes(r: (n: number) => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = r(256);
  return b;
}

function mutate(r: (n: number) => number, seed: Buffer): Buffer {
  const b = Buffer.from(seed);
  switch (r(6)) {
    case 0: // flip bytes anywhere
      for (let i = r(8) + 1; i > 0; i--) b[r(b.length)] = r(256);
      return b;
    case 1: // damage the options area: lengths and codes
      for (let i = r(6) + 1; i > 0; i--)
        b[240 + r(b.length - 240)] = [0, 1, 52, 53, 93, 97, 255, r(256)][r(8)] as number;
      return b;
    case 2: // truncate
      return b.subarray(0, r(b.length));
    case 3: // extend with garbage
      return Buffer.concat([b, randomBytes(r, r(600))]);
    case 4: // overload with garbage in file/sname
      b[240] = 52;
      b[241] = 1;
      b[242] = r(5);
      for (let i = 44; i < 236; i++) b[i] = r(256);
      return b;
    default: // random bytes behind a valid header and cookie
      return Buffer.concat([b.subarray(0, 240), randomBytes(r, r(400))]);
  }
}

describe("DHCP fuzz", () => {
  it("survives 100,000 malformed packets (random and mutated real captures) within a time bound", () => {
    expect(seeds.length).toBeGreaterThan(0);
    const r = rng(0x6b766d73);
    const range = parseRange("10.50.0.100-10.50.0.200");
    if (!range) throw new Error("range");
    const table = new LeaseTable(range);
    const cfg = { serverIp: "10.50.0.1", subnetMask: "255.255.255.0", leaseTime: 600 };
    const counts = { decoded: 0, rejected: 0, replies: 0 };
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) {
      const pkt = i % 10 === 0 ? randomBytes(r, r(700)) : mutate(r, seeds[r(seeds.length)] as Buffer);
      const d = decodePacket(pkt);
      if (!d.ok) {
        if (d.error.kind !== "dhcp-decode-error")
          throw new Error(`untyped rejection: ${JSON.stringify(d.error)}`);
        counts.rejected++;
        continue;
      }
      counts.decoded++;
      const client = describeClient(d.value);
      const decision = decideBoot({ httpBase: "http://10.50.0.1" }, client);
      for (const res of [
        respondProxy({ serverIp: cfg.serverIp }, d.value, client, decision, i % 2 ? 67 : 4011, 68),
        respondFull(cfg, table, d.value, client, decision, 68, 1000 + (i >> 6)),
      ]) {
        if ("reply" in res) {
          counts.replies++;
          const back = decodePacket(encodePacket(res.reply));
          if (!back.ok) throw new Error(`a reply does not decode: ${back.error.reason}`);
        }
      }
    }
    const ms = performance.now() - start;
    // Both outcomes occur (the mutations are neither all fatal nor all harmless).
    expect(counts.rejected).toBeGreaterThan(10_000);
    expect(counts.decoded).toBeGreaterThan(10_000);
    expect(counts.replies).toBeGreaterThan(1_000);
    expect(ms).toBeLessThan(30_000);
    console.log(`dhcp fuzz: ${JSON.stringify(counts)} in ${Math.round(ms)} ms`);
  }, 60_000);
});
