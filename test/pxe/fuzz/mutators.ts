// Malformed datagrams for the fuzz tests: DHCP mutated from real firmware captures (SeaBIOS iPXE,
// OVMF PXE and HTTP Boot) and TFTP mutated from the requests, ACKs and errors real clients send,
// plus plain random bytes. Reproducible from a seed (xorshift32), so a failure can be replayed.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { encodeAck, encodeError, encodeRequest } from "../../../src/pxe/tftp/packet.js";
import { readPcapUdp } from "../dhcp4/pcap.js";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "../dhcp4/fixtures");

export type Rng = (n: number) => number;

export function rng(seed: number): Rng {
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

export function randomBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = r(256);
  return b;
}

/** The DHCP payloads of the captures (client to server). */
export function dhcpSeeds(): Buffer[] {
  return ["seabios-ipxe.pcap", "ovmf-pxe.pcap", "ovmf-http.pcap"].flatMap((f) =>
    readPcapUdp(path.join(fixtures, f))
      .filter((u) => u.dstPort === 67 || u.dstPort === 4011)
      .map((u) => u.payload),
  );
}

/** The chaddr of fuzzed packets that keep one: a small set, so the fuzz cannot drain the pool (that is a starvation attack, which any DHCP server on an open segment suffers, not a parser test). */
export const FUZZ_MACS = 32;

function mutateDhcp(r: Rng, seed: Buffer): Buffer {
  let b = Buffer.from(seed);
  switch (r(7)) {
    case 0: // bytes anywhere
      for (let i = r(8) + 1; i > 0; i--) b[r(b.length)] = r(256);
      break;
    case 1: // option codes and lengths
      for (let i = r(6) + 1; i > 0; i--)
        b[240 + r(b.length - 240)] = [0, 1, 52, 53, 55, 60, 77, 93, 97, 175, 255, r(256)][r(12)] as number;
      break;
    case 2: // truncated
      b = b.subarray(0, r(b.length));
      break;
    case 3: // garbage tail
      b = Buffer.concat([b, randomBytes(r, r(800))]);
      break;
    case 4: // overload (option 52) over a garbage file/sname
      if (b.length > 243) {
        b[240] = 52;
        b[241] = 1;
        b[242] = r(5);
        for (let i = 44; i < 236; i++) b[i] = r(256);
      }
      break;
    case 5: // header fields: op, htype, hlen, hops, giaddr, ciaddr
      b[r(4)] = r(256);
      if (r(2)) b.writeUInt32BE(r(2 ** 31) * 2, [12, 24][r(2)] as number);
      break;
    default: // random options behind a valid header and cookie
      b = Buffer.concat([b.subarray(0, 240), randomBytes(r, r(500))]);
  }
  // chaddr from the fuzz set (locally administered 02:66:7a:...), when the packet still has one.
  if (b.length >= 34) Buffer.from([0x02, 0x66, 0x7a, 0, 0, r(FUZZ_MACS)]).copy(b, 28);
  return b;
}

/** `count` malformed DHCP datagrams: nine in ten mutated captures, one in ten random bytes. */
export function dhcpFuzz(seed: number, count: number): Buffer[] {
  const r = rng(seed);
  const seeds = dhcpSeeds();
  if (!seeds.length) throw new Error(`no DHCP packets in ${fixtures}/*.pcap`);
  return Array.from({ length: count }, (_, i) =>
    i % 10 === 0 ? randomBytes(r, r(700)) : mutateDhcp(r, seeds[r(seeds.length)] as Buffer),
  );
}

const NAMES = [
  "undionly.kpxe",
  "ipxe.efi",
  "UNDIONLY.KPXE",
  "/undionly.kpxe",
  "\\undionly.kpxe",
  "undionly.kpxe\xff\xff\xff",
  "../../etc/passwd",
  "..\\..\\etc\\shadow",
  "%2e%2e/%2e%2e/etc/passwd",
  "/etc/passwd",
  "ipxe/../../../root/.ssh/id_rsa",
  "",
  "a".repeat(600),
];

function tftpSeed(r: Rng): Buffer {
  switch (r(5)) {
    case 0:
      return encodeAck(r(65536));
    case 1:
      return encodeError(r(9), "x".repeat(r(100)));
    case 2: // a DATA packet, as if someone wrote to us
      return Buffer.concat([Buffer.from([0, 3, r(256), r(256)]), randomBytes(r, r(1500))]);
    default: {
      const opts: [string, string][] = [];
      for (const [k, v] of [
        ["blksize", String(r(70_000))],
        ["tsize", String(r(2) ? 0 : r(2 ** 31))],
        ["windowsize", String(r(70_000))],
        ["timeout", String(r(300))],
        ["BlkSize", "-1"],
        ["windowsize", "1e9"],
      ] as const)
        if (r(2)) opts.push([k, v]);
      return encodeRequest(
        r(8) ? "rrq" : "wrq",
        Buffer.from(NAMES[r(NAMES.length)] as string, "latin1"),
        ["octet", "netascii", "mail", "OCTET", ""][r(5)] as string,
        opts,
      );
    }
  }
}

function mutateTftp(r: Rng, seed: Buffer): Buffer {
  const b = Buffer.from(seed);
  switch (r(6)) {
    case 0:
      for (let i = r(6) + 1; i > 0; i--) b[r(b.length)] = r(256);
      return b;
    case 1:
      return b.subarray(0, r(b.length));
    case 2: // every NUL gone: unterminated fields
      return Buffer.from(b.filter((x) => x !== 0));
    case 3:
      return Buffer.concat([b, randomBytes(r, r(300))]);
    case 4: // another opcode on the same body
      b.writeUInt16BE(r(12), 0);
      return b;
    default: // unmodified: a valid request, ACK or error from a stranger
      return b;
  }
}

/** `count` malformed TFTP datagrams: mutated requests, ACKs, errors and DATA, and random bytes. */
export function tftpFuzz(seed: number, count: number): Buffer[] {
  const r = rng(seed);
  return Array.from({ length: count }, (_, i) =>
    i % 10 === 0 ? randomBytes(r, r(600)) : mutateTftp(r, tftpSeed(r)),
  );
}
