// The fuzzers' inputs against the protocol libraries' decoders: a useful fuzz is neither all
// rejected at the first byte nor all valid, and it is the same for the same seed.
import { describe, expect, it } from "vitest";
import { decodePacket as decodeDhcp } from "../../../src/pxe/dhcp4/packet.js";
import { decodePacket as decodeTftp } from "../../../src/pxe/tftp/packet.js";
import { dhcpFuzz, tftpFuzz } from "./mutators.js";

describe("fuzz mutators", () => {
  it("DHCP: mutated captures and random bytes, some decoding and most not, reproducible", () => {
    const packets = dhcpFuzz(7, 10_000);
    const decoded = packets.filter((p) => decodeDhcp(p).ok).length;
    expect(decoded).toBeGreaterThan(1_000);
    expect(decoded).toBeLessThan(9_000);
    expect(dhcpFuzz(7, 100)).toEqual(packets.slice(0, 100));
    expect(dhcpFuzz(8, 100)).not.toEqual(packets.slice(0, 100));
  });

  it("TFTP: mutated requests, ACKs, errors and DATA, some decoding and most not, reproducible", () => {
    const packets = tftpFuzz(7, 10_000);
    const ops = new Map<string, number>();
    for (const p of packets) {
      const d = decodeTftp(p);
      const key = d.ok ? d.packet.op : "rejected";
      ops.set(key, (ops.get(key) ?? 0) + 1);
    }
    expect(ops.get("rejected")).toBeGreaterThan(1_000);
    for (const op of ["rrq", "ack", "error", "data"]) expect(ops.get(op), op).toBeGreaterThan(100);
    expect(tftpFuzz(7, 100)).toEqual(packets.slice(0, 100));
  });
});
