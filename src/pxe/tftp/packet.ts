// TFTP packet codec (RFC 1350 with the RFC 2347 option extension). decodePacket never throws: the
// server meets every byte a network can send, so bad input is a value, not an exception.

export const OP = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 error codes, plus 8 from RFC 2347. */
export const ERR = {
  UNDEFINED: 0,
  NOT_FOUND: 1,
  ACCESS: 2,
  DISK_FULL: 3,
  ILLEGAL_OP: 4,
  UNKNOWN_TID: 5,
  EXISTS: 6,
  NO_USER: 7,
  OPTIONS_REFUSED: 8,
} as const;

export interface RequestPacket {
  op: "rrq" | "wrq";
  /** The name's raw bytes: cleaning (0xFF tails, backslashes) and decoding belong to names.ts. */
  filename: Buffer;
  /** Lower-cased, as RFC 1350 says modes are case-insensitive. */
  mode: string;
  /** Option names lower-cased (RFC 2347: case-insensitive); the first of a repeated name wins. */
  options: Map<string, string>;
}
export interface DataPacket {
  op: "data";
  block: number;
  data: Buffer;
}
export interface AckPacket {
  op: "ack";
  block: number;
}
export interface ErrorPacket {
  op: "error";
  code: number;
  message: string;
}
export interface OackPacket {
  op: "oack";
  options: Map<string, string>;
}
export type Packet = RequestPacket | DataPacket | AckPacket | ErrorPacket | OackPacket;

export type Decoded =
  | { ok: true; packet: Packet }
  | { ok: false; reason: string; opcode: number | undefined };

/** Longest request field we accept (names, modes, option names and values), in bytes. */
const MAX_FIELD = 512;

export function decodePacket(buf: Buffer): Decoded {
  if (buf.length < 2) return { ok: false, reason: "shorter than an opcode", opcode: undefined };
  const opcode = buf.readUInt16BE(0);
  const bad = (reason: string): Decoded => ({ ok: false, reason, opcode });
  switch (opcode) {
    case OP.RRQ:
    case OP.WRQ: {
      const fields = splitFields(buf, 2);
      if (fields.complete.length < 2) return bad("request without a NUL-terminated file name and mode");
      const [filename, modeBytes] = fields.complete as [Buffer, Buffer];
      if (filename.length === 0) return bad("empty file name");
      if (filename.length > MAX_FIELD || modeBytes.length > MAX_FIELD) return bad("field too long");
      const options = new Map<string, string>();
      // Pairs after the mode; a trailing unterminated fragment or a name without a value is ignored
      // (some ROMs pad requests with garbage after the last NUL).
      for (let i = 2; i + 1 < fields.complete.length; i += 2) {
        const name = (fields.complete[i] as Buffer).toString("latin1").toLowerCase();
        const value = (fields.complete[i + 1] as Buffer).toString("latin1");
        if (name.length === 0 || name.length > MAX_FIELD || value.length > MAX_FIELD) continue;
        if (!options.has(name)) options.set(name, value);
      }
      return {
        ok: true,
        packet: {
          op: opcode === OP.RRQ ? "rrq" : "wrq",
          filename,
          mode: modeBytes.toString("latin1").toLowerCase(),
          options,
        },
      };
    }
    case OP.DATA:
      if (buf.length < 4) return bad("DATA shorter than 4 bytes");
      return { ok: true, packet: { op: "data", block: buf.readUInt16BE(2), data: buf.subarray(4) } };
    case OP.ACK:
      if (buf.length < 4) return bad("ACK shorter than 4 bytes");
      return { ok: true, packet: { op: "ack", block: buf.readUInt16BE(2) } };
    case OP.ERROR: {
      if (buf.length < 4) return bad("ERROR shorter than 4 bytes");
      const end = buf.indexOf(0, 4);
      // Lenient: a message without its NUL still tells us the transfer is over.
      const message = buf.subarray(4, end === -1 ? buf.length : end).toString("utf8");
      return { ok: true, packet: { op: "error", code: buf.readUInt16BE(2), message } };
    }
    case OP.OACK: {
      const fields = splitFields(buf, 2);
      const options = new Map<string, string>();
      for (let i = 0; i + 1 < fields.complete.length; i += 2) {
        options.set(
          (fields.complete[i] as Buffer).toString("latin1").toLowerCase(),
          (fields.complete[i + 1] as Buffer).toString("latin1"),
        );
      }
      return { ok: true, packet: { op: "oack", options } };
    }
    default:
      return bad(`unknown opcode ${opcode}`);
  }
}

/** NUL-terminated fields from `start`; bytes after the last NUL are left out. */
function splitFields(buf: Buffer, start: number): { complete: Buffer[] } {
  const complete: Buffer[] = [];
  let at = start;
  while (at < buf.length) {
    const end = buf.indexOf(0, at);
    if (end === -1) break;
    complete.push(buf.subarray(at, end));
    at = end + 1;
  }
  return { complete };
}

const NUL = Buffer.from([0]);

function withOpcode(op: number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  b.writeUInt16BE(op, 0);
  return b;
}

/** The 4-byte DATA header; the payload is sent beside it (scatter/gather), never copied. */
export function dataHeader(block: number): Buffer {
  const b = withOpcode(OP.DATA, 4);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeData(block: number, data: Buffer): Buffer {
  return Buffer.concat([dataHeader(block), data]);
}

export function encodeAck(block: number): Buffer {
  const b = withOpcode(OP.ACK, 4);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

export function encodeError(code: number, message: string): Buffer {
  const text = Buffer.from(message, "utf8");
  const b = withOpcode(OP.ERROR, 4);
  b.writeUInt16BE(code & 0xffff, 2);
  return Buffer.concat([b, text, NUL]);
}

function encodePairs(op: number, head: Buffer[], options: Iterable<[string, string]>): Buffer {
  const parts = [withOpcode(op, 2), ...head];
  for (const [name, value] of options)
    parts.push(Buffer.from(name, "latin1"), NUL, Buffer.from(value, "latin1"), NUL);
  return Buffer.concat(parts);
}

export function encodeOack(options: Iterable<[string, string]>): Buffer {
  return encodePairs(OP.OACK, [], options);
}

export function encodeRequest(
  op: "rrq" | "wrq",
  filename: string | Buffer,
  mode = "octet",
  options: Iterable<[string, string]> = [],
): Buffer {
  const name = typeof filename === "string" ? Buffer.from(filename, "utf8") : filename;
  return encodePairs(op === "rrq" ? OP.RRQ : OP.WRQ, [name, NUL, Buffer.from(mode, "latin1"), NUL], options);
}
