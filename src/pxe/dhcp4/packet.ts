// DHCPv4 packet codec (RFC 2131 header, RFC 2132 options, RFC 3396 long options, RFC 4578 PXE
// options, RFC 3004 user class). Decoding never throws and never reads outside the buffer: every
// problem becomes a DecodeError naming the field or option and the offset. Options the responders
// interpret are length-checked here, once, so the accessors below can trust them.

export const BOOTP_REQUEST = 1;
export const BOOTP_REPLY = 2;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP header plus the magic cookie. */
export const HEADER_LENGTH = 236;
const OPTIONS_OFFSET = HEADER_LENGTH + 4;
/** A DHCP message never needs more than an Ethernet jumbo frame; anything longer is refused. */
export const MAX_PACKET_LENGTH = 9000;
/** RFC 951's minimum BOOTP message; some old PXE ROMs drop shorter replies. */
const MIN_REPLY_LENGTH = 300;

export const MessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

export const Opt = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE_NAME: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  CLIENT_UUID: 97,
  VENDOR_SPECIFIC: 43,
  IPXE_ENCAP: 175,
  END: 255,
} as const;

export interface Packet {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** The 16-byte chaddr field as sent. */
  chaddr: Buffer;
  /** sname and file as NUL-terminated strings (empty when they carried overloaded options). */
  sname: string;
  file: string;
  /** Option code to value, with repeated instances concatenated (RFC 3396), in first-seen order. */
  options: Map<number, Buffer>;
}

export interface DecodeError {
  kind: "dhcp-decode-error";
  reason: string;
  offset?: number;
}
export type Decoded<T> = { ok: true; value: T } | { ok: false; error: DecodeError };

const fail = (reason: string, offset?: number): { ok: false; error: DecodeError } => ({
  ok: false,
  error:
    offset === undefined
      ? { kind: "dhcp-decode-error", reason }
      : { kind: "dhcp-decode-error", reason, offset },
});

export const BROADCAST_FLAG = 0x8000;
export const ZERO_IP = "0.0.0.0";

export function ipToString(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** Parses a dotted quad strictly; undefined when it is not one. */
export function parseIp(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function ipFromNumber(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function writeIp(b: Buffer, at: number, ip: string): void {
  const n = parseIp(ip);
  if (n === undefined) throw new TypeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  b.writeUInt32BE(n, at);
}

function fixedString(b: Buffer, at: number, len: number): string {
  const field = b.subarray(at, at + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? len : nul).toString("latin1");
}

/**
 * Walks one option area (the options field, or file/sname when overloaded), appending each
 * option's bytes to `parts`. Pad (0) is skipped; End (255) or the area's end stops the walk.
 */
function readOptionArea(
  b: Buffer,
  start: number,
  end: number,
  parts: Map<number, Buffer[]>,
): DecodeError | undefined {
  let i = start;
  while (i < end) {
    const code = b[i] as number;
    if (code === Opt.END) return undefined;
    if (code === Opt.PAD) {
      i++;
      continue;
    }
    if (i + 1 >= end)
      return { kind: "dhcp-decode-error", reason: `option ${code} has no length byte`, offset: i };
    const len = b[i + 1] as number;
    if (i + 2 + len > end)
      return {
        kind: "dhcp-decode-error",
        reason: `option ${code} length ${len} runs past the end of its area`,
        offset: i,
      };
    const list = parts.get(code);
    const value = b.subarray(i + 2, i + 2 + len);
    if (list) list.push(value);
    else parts.set(code, [value]);
    i += 2 + len;
  }
  return undefined;
}

/** Lengths the responders rely on; anything else with these codes is a malformed packet. */
const LENGTH_RULES: Record<number, (len: number) => boolean> = {
  [Opt.MESSAGE_TYPE]: (l) => l === 1,
  [Opt.OVERLOAD]: (l) => l === 1,
  [Opt.REQUESTED_IP]: (l) => l === 4,
  [Opt.SERVER_ID]: (l) => l === 4,
  [Opt.SUBNET_MASK]: (l) => l === 4,
  [Opt.LEASE_TIME]: (l) => l === 4,
  [Opt.MAX_MESSAGE_SIZE]: (l) => l === 2,
  [Opt.CLIENT_ARCH]: (l) => l >= 2 && l % 2 === 0,
  [Opt.CLIENT_NDI]: (l) => l === 3,
  [Opt.CLIENT_UUID]: (l) => l === 17,
  [Opt.CLIENT_ID]: (l) => l >= 2,
};

export function decodePacket(b: Buffer): Decoded<Packet> {
  if (!Buffer.isBuffer(b)) return fail("not a buffer");
  if (b.length < OPTIONS_OFFSET) return fail(`packet is ${b.length} bytes, shorter than the 240-byte header`);
  if (b.length > MAX_PACKET_LENGTH)
    return fail(`packet is ${b.length} bytes, longer than ${MAX_PACKET_LENGTH}`);
  const op = b[0] as number;
  if (op !== BOOTP_REQUEST && op !== BOOTP_REPLY) return fail(`op ${op} is neither request nor reply`, 0);
  const hlen = b[2] as number;
  if (hlen > 16) return fail(`hlen ${hlen} exceeds the 16-byte chaddr field`, 2);
  if (b.readUInt32BE(HEADER_LENGTH) !== MAGIC_COOKIE) return fail("no DHCP magic cookie", HEADER_LENGTH);

  const parts = new Map<number, Buffer[]>();
  const err = readOptionArea(b, OPTIONS_OFFSET, b.length, parts);
  if (err) return { ok: false, error: err };
  // RFC 2131 4.1: with option 52 the file and then the sname fields hold more options.
  let overload = 0;
  const ov = parts.get(Opt.OVERLOAD);
  if (ov) {
    if (ov.length !== 1 || ov[0]?.length !== 1)
      return fail("option 52 (overload) must appear once with length 1");
    overload = ov[0][0] as number;
    if (overload < 1 || overload > 3) return fail(`option 52 (overload) value ${overload} is not 1, 2 or 3`);
    if (overload & 1) {
      const e = readOptionArea(b, 108, 236, parts);
      if (e) return { ok: false, error: { ...e, reason: `in the file field: ${e.reason}` } };
    }
    if (overload & 2) {
      const e = readOptionArea(b, 44, 108, parts);
      if (e) return { ok: false, error: { ...e, reason: `in the sname field: ${e.reason}` } };
    }
  }
  const options = new Map<number, Buffer>();
  for (const [code, list] of parts) {
    const value = list.length === 1 ? (list[0] as Buffer) : Buffer.concat(list);
    const rule = LENGTH_RULES[code];
    if (rule && !rule(value.length)) return fail(`option ${code} has a bad length ${value.length}`);
    options.set(code, Buffer.from(value)); // a copy: the caller may reuse its receive buffer
  }
  const mt = options.get(Opt.MESSAGE_TYPE);
  if (mt && ((mt[0] as number) < 1 || (mt[0] as number) > 18))
    return fail(`option 53 (message type) value ${mt[0]} is unknown`);

  return {
    ok: true,
    value: {
      op,
      htype: b[1] as number,
      hlen,
      hops: b[3] as number,
      xid: b.readUInt32BE(4),
      secs: b.readUInt16BE(8),
      flags: b.readUInt16BE(10),
      ciaddr: ipToString(b, 12),
      yiaddr: ipToString(b, 16),
      siaddr: ipToString(b, 20),
      giaddr: ipToString(b, 24),
      chaddr: Buffer.from(b.subarray(28, 44)),
      sname: overload & 2 ? "" : fixedString(b, 44, 64),
      file: overload & 1 ? "" : fixedString(b, 108, 128),
      options,
    },
  };
}

/**
 * Encodes a packet. Options longer than 255 bytes are split into consecutive instances (RFC 3396);
 * message type goes first, End last, and the message is padded to BOOTP's 300-byte minimum.
 * Throws TypeError only on programmer error (a bad address, an over-long sname/file).
 */
export function encodePacket(p: Packet): Buffer {
  const header = Buffer.alloc(OPTIONS_OFFSET);
  header[0] = p.op;
  header[1] = p.htype;
  header[2] = p.hlen;
  header[3] = p.hops;
  header.writeUInt32BE(p.xid >>> 0, 4);
  header.writeUInt16BE(p.secs & 0xffff, 8);
  header.writeUInt16BE(p.flags & 0xffff, 10);
  writeIp(header, 12, p.ciaddr);
  writeIp(header, 16, p.yiaddr);
  writeIp(header, 20, p.siaddr);
  writeIp(header, 24, p.giaddr);
  p.chaddr.copy(header, 28, 0, Math.min(16, p.chaddr.length));
  const sname = Buffer.from(p.sname, "latin1");
  const file = Buffer.from(p.file, "latin1");
  if (sname.length > 63) throw new TypeError(`sname longer than 63 bytes: ${p.sname}`);
  if (file.length > 127) throw new TypeError(`file longer than 127 bytes: ${p.file}`);
  sname.copy(header, 44);
  file.copy(header, 108);
  header.writeUInt32BE(MAGIC_COOKIE, HEADER_LENGTH);

  const chunks: Buffer[] = [header];
  const codes = [...p.options.keys()].sort((a, c) =>
    a === Opt.MESSAGE_TYPE ? -1 : c === Opt.MESSAGE_TYPE ? 1 : 0,
  );
  for (const code of codes) {
    if (code === Opt.PAD || code === Opt.END) continue;
    chunks.push(encodeOption(code, p.options.get(code) as Buffer));
  }
  chunks.push(Buffer.from([Opt.END]));
  let out = Buffer.concat(chunks);
  if (out.length < MIN_REPLY_LENGTH) out = Buffer.concat([out, Buffer.alloc(MIN_REPLY_LENGTH - out.length)]);
  return out;
}

/** One option as code/length/value, split into 255-byte instances when longer (RFC 3396). */
export function encodeOption(code: number, value: Buffer): Buffer {
  if (value.length === 0) return Buffer.from([code, 0]);
  const out: Buffer[] = [];
  for (let i = 0; i < value.length; i += 255) {
    const piece = value.subarray(i, i + 255);
    out.push(Buffer.from([code, piece.length]), piece);
  }
  return Buffer.concat(out);
}

/** Sub-options inside option 43 or 175: code/length/value, 0 pad, 255 end. */
export function decodeEncapsulated(value: Buffer): Decoded<Map<number, Buffer>> {
  const parts = new Map<number, Buffer[]>();
  const err = readOptionArea(value, 0, value.length, parts);
  if (err) return { ok: false, error: { ...err, reason: `encapsulated: ${err.reason}` } };
  const out = new Map<number, Buffer>();
  for (const [code, list] of parts) out.set(code, Buffer.concat(list));
  return { ok: true, value: out };
}

export function encodeEncapsulated(sub: Iterable<[number, Buffer]>): Buffer {
  const chunks: Buffer[] = [];
  for (const [code, value] of sub) {
    if (value.length > 255) throw new TypeError(`sub-option ${code} longer than 255 bytes`);
    chunks.push(Buffer.from([code, value.length]), value);
  }
  chunks.push(Buffer.from([Opt.END]));
  return Buffer.concat(chunks);
}

// ---- accessors over a decoded packet (lengths already checked by decodePacket) ----

export function messageType(p: Packet): number | undefined {
  return p.options.get(Opt.MESSAGE_TYPE)?.[0];
}

/** The hardware address as lower-case colon hex (Ethernet: 6 bytes). */
export function macOf(p: Packet): string {
  return [...p.chaddr.subarray(0, p.hlen)].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

export function ipOption(p: Packet, code: number): string | undefined {
  const v = p.options.get(code);
  return v && v.length === 4 ? ipToString(v, 0) : undefined;
}

export function stringOption(p: Packet, code: number): string | undefined {
  return p.options.get(code)?.toString("latin1");
}

/** Option 93: client system architectures, in the client's order (RFC 4578 2.1). */
export function clientArchitectures(p: Packet): number[] {
  const v = p.options.get(Opt.CLIENT_ARCH);
  if (!v) return [];
  const out: number[] = [];
  for (let i = 0; i + 1 < v.length; i += 2) out.push(v.readUInt16BE(i));
  return out;
}

/** Option 94: network interface identifier (type 1 = UNDI, then major, minor). */
export function clientNdi(p: Packet): { type: number; major: number; minor: number } | undefined {
  const v = p.options.get(Opt.CLIENT_NDI);
  return v ? { type: v[0] as number, major: v[1] as number, minor: v[2] as number } : undefined;
}

/**
 * Option 97: the client machine identifier (type 0 + 16-byte GUID). Rendered in SMBIOS order, as
 * dmidecode and the firmware setup show it: the first three fields little-endian (RFC 4122 vs
 * SMBIOS 2.6 byte order).
 */
export function clientUuid(p: Packet): string | undefined {
  const v = p.options.get(Opt.CLIENT_UUID);
  if (v?.[0] !== 0 || !v) return undefined;
  const g = v.subarray(1);
  const hex = (a: number, c: number, le: boolean) => {
    const bytes = [...g.subarray(a, c)];
    if (le) bytes.reverse();
    return bytes.map((x) => x.toString(16).padStart(2, "0")).join("");
  };
  return `${hex(0, 4, true)}-${hex(4, 6, true)}-${hex(6, 8, true)}-${hex(8, 10, false)}-${hex(10, 16, false)}`;
}

/**
 * Option 77 user classes. RFC 3004 sends a list of length-prefixed items; iPXE (and several other
 * clients) send one plain string such as "iPXE". A value that does not parse exactly as an RFC 3004
 * list is taken as one plain string.
 */
export function userClasses(p: Packet): string[] {
  const v = p.options.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const items: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i] as number;
    if (len === 0 || i + 1 + len > v.length) return [v.toString("latin1")];
    items.push(v.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return items;
}

/** Option 43 or 175 as sub-options; undefined when absent or malformed. */
export function encapsulatedOption(p: Packet, code: number): Map<number, Buffer> | undefined {
  const v = p.options.get(code);
  if (!v) return undefined;
  const d = decodeEncapsulated(v);
  return d.ok ? d.value : undefined;
}

/** An empty reply skeleton answering `req`: same xid, flags, giaddr and chaddr. */
export function replyTo(req: Packet, type: MessageTypeCode): Packet {
  return {
    op: BOOTP_REPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: ZERO_IP,
    yiaddr: ZERO_IP,
    siaddr: ZERO_IP,
    giaddr: req.giaddr,
    chaddr: Buffer.from(req.chaddr),
    sname: "",
    file: "",
    options: new Map([[Opt.MESSAGE_TYPE, Buffer.from([type])]]),
  };
}

export const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};
export const ipBytes = (ip: string): Buffer => u32(parseIp(ip) ?? 0);
