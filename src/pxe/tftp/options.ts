// Option negotiation (RFC 2347), with blksize (2348), tsize and timeout (2349) and windowsize (7440).
// An option we do not know, or whose value is out of range or not a decimal number, is left out of
// the OACK: RFC 2347 lets a server ignore options, and the client then falls back to the defaults.

export const DEFAULT_BLKSIZE = 512;
export const MIN_BLKSIZE = 8;
export const MAX_BLKSIZE = 65464;
export const MAX_WINDOWSIZE = 65535;

export interface NegotiationLimits {
  /** The largest blksize granted; a larger request is answered with this (RFC 2348 allows smaller). */
  maxBlksize: number;
  /** The largest windowsize granted; it bounds the memory a transfer holds for retransmission. */
  maxWindowsize: number;
  /**
   * The longest client timeout accepted, in seconds. RFC 2349 allows up to 255, but a stalled
   * client asking that much would hold a transfer slot for half an hour; longer asks are ignored.
   */
  maxTimeoutSec: number;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** The client's retransmission timeout in seconds (RFC 2349), when it sent one we accept. */
  timeoutSec: number | undefined;
  /** Options to acknowledge in an OACK, in the client's order; empty means no OACK at all. */
  acknowledged: [string, string][];
}

function decimal(value: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Decide the transfer's parameters from the request's options. `size` is the file's length in
 * bytes, or undefined when it is not known before the transfer (netascii conversion): tsize is then
 * not acknowledged.
 */
export function negotiate(
  requested: Map<string, string>,
  size: number | undefined,
  limits: NegotiationLimits,
): Negotiated {
  const out: Negotiated = {
    blksize: DEFAULT_BLKSIZE,
    windowsize: 1,
    timeoutSec: undefined,
    acknowledged: [],
  };
  for (const [name, raw] of requested) {
    const value = decimal(raw);
    switch (name) {
      case "blksize":
        if (value === undefined || value < MIN_BLKSIZE || value > MAX_BLKSIZE) break;
        out.blksize = Math.min(value, limits.maxBlksize);
        out.acknowledged.push(["blksize", String(out.blksize)]);
        break;
      case "windowsize":
        if (value === undefined || value < 1 || value > MAX_WINDOWSIZE) break;
        out.windowsize = Math.min(value, limits.maxWindowsize);
        out.acknowledged.push(["windowsize", String(out.windowsize)]);
        break;
      case "timeout":
        if (value === undefined || value < 1 || value > 255 || value > limits.maxTimeoutSec) break;
        out.timeoutSec = value;
        out.acknowledged.push(["timeout", String(value)]);
        break;
      case "tsize":
        // A read request carries 0 (or any number); the answer is the size of the file.
        if (value === undefined || size === undefined) break;
        out.acknowledged.push(["tsize", String(size)]);
        break;
    }
  }
  return out;
}
