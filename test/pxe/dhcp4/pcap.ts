// Reads the UDP payloads out of a classic libpcap file (Ethernet link type), for the captured
// firmware packets. Bounded: refuses anything but the one layout tcpdump -w writes here.
import { readFileSync } from "node:fs";

export interface UdpRecord {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export function readPcapUdp(file: string): UdpRecord[] {
  const b = readFileSync(file);
  if (b.length < 24 || b.readUInt32LE(0) !== 0xa1b2c3d4) throw new Error(`${file}: not a little-endian pcap`);
  if (b.readUInt32LE(20) !== 1) throw new Error(`${file}: link type is not Ethernet`);
  const out: UdpRecord[] = [];
  let at = 24;
  while (at + 16 <= b.length) {
    const incl = b.readUInt32LE(at + 8);
    const frame = b.subarray(at + 16, at + 16 + incl);
    at += 16 + incl;
    if (frame.length < 14 + 20 + 8 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ihl = ((frame[14] as number) & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = frame.subarray(14 + ihl);
    const len = udp.readUInt16BE(4);
    out.push({ srcPort: udp.readUInt16BE(0), dstPort: udp.readUInt16BE(2), payload: udp.subarray(8, len) });
  }
  return out;
}
