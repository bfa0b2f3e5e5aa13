// The bytes of one transfer, cut into numbered blocks. It reads ahead in large chunks so the
// lock-step hot path (ACK in, DATA out) almost never waits on the disk, and keeps bytes only from
// the oldest unacknowledged block on, which is all a retransmission can need.
import type { TftpFile } from "./source.js";

const READ_AHEAD = 256 * 1024;

/** netascii (RFC 764 as used by RFC 1350): LF becomes CR LF, a bare CR becomes CR NUL. */
export function toNetascii(raw: Buffer): Buffer {
  let extra = 0;
  for (const byte of raw) if (byte === 0x0a || byte === 0x0d) extra++;
  if (extra === 0) return raw;
  const out = Buffer.allocUnsafe(raw.length + extra);
  let o = 0;
  for (const byte of raw) {
    if (byte === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
    } else if (byte === 0x0d) {
      out[o++] = 0x0d;
      out[o++] = 0x00;
    } else out[o++] = byte;
  }
  return out;
}

export class BlockReader {
  /** Bytes from content offset `start` on. */
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private rawPos = 0;
  private ended: boolean;
  private readonly readAhead: number;

  constructor(
    private readonly file: TftpFile,
    readonly blksize: number,
    windowsize: number,
    private readonly netascii: boolean,
  ) {
    this.ended = file.size === 0;
    this.readAhead = Math.max(READ_AHEAD, 2 * windowsize * blksize);
  }

  /** The number of the last block (the one shorter than blksize, possibly empty), once known. */
  get lastBlock(): number | undefined {
    if (!this.netascii) return Math.floor(this.file.size / this.blksize) + 1;
    return this.ended ? Math.floor((this.start + this.buf.length) / this.blksize) + 1 : undefined;
  }

  /** True when blocks first..last are in memory (or lie past the end of the content). */
  has(first: number, last: number): boolean {
    return (
      (first - 1) * this.blksize >= this.start &&
      (this.ended || this.start + this.buf.length >= last * this.blksize)
    );
  }

  /** Loads blocks first..last and forgets everything before `first`, which is acknowledged. */
  async load(first: number, last: number): Promise<void> {
    const from = (first - 1) * this.blksize;
    if (from > this.start) {
      this.buf = this.buf.subarray(Math.min(from - this.start, this.buf.length));
      this.start = from;
    }
    const want = last * this.blksize;
    while (!this.ended && this.start + this.buf.length < want) {
      const length = this.netascii ? this.readAhead : Math.min(this.readAhead, this.file.size - this.rawPos);
      const raw = await this.file.read(this.rawPos, length);
      if (!this.netascii && raw.length < length) throw new Error("file shrank while being served");
      this.rawPos += raw.length;
      if (this.netascii ? raw.length < length : this.rawPos >= this.file.size) this.ended = true;
      const bytes = this.netascii ? toNetascii(raw) : raw;
      this.buf = this.buf.length === 0 ? bytes : Buffer.concat([this.buf, bytes]);
    }
  }

  /** Bytes in blocks first..last (all full but the last block of the content). */
  bytesIn(first: number, last: number): number {
    const lastBlock = this.lastBlock;
    if (lastBlock === undefined || last < lastBlock) return (last - first + 1) * this.blksize;
    return (last - first) * this.blksize + this.block(last).length;
  }

  /** Block n's payload; only valid for a block that `has` covers. */
  block(n: number): Buffer {
    const off = (n - 1) * this.blksize - this.start;
    return this.buf.subarray(Math.min(off, this.buf.length), Math.min(off + this.blksize, this.buf.length));
  }
}
