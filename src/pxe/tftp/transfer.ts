// One read transfer as an explicit state machine. Inputs are classified first (an ACK is new, final
// or stale; a timeout is one more try or the last), then TRANSITIONS says where each input leads and
// what to do. Retransmission happens only on a timeout: a stale or duplicate ACK is ignored, so a
// duplicated ACK can never make the window go out twice (the Sorcerer's Apprentice bug, RFC 1123
// 4.2.3.1). An ACK inside the window slides it to the block after (RFC 7440: the client saw a gap).
import type { BlockReader } from "./blocks.js";
import { dataHeader, ERR, encodeError, encodeOack } from "./packet.js";

export type TransferState = "idle" | "negotiating" | "sending" | "done" | "failed";

export type TransferInput =
  | "start" // no options acknowledged: DATA 1 goes out directly
  | "start-oack" // options acknowledged: OACK, then wait for ACK 0
  | "ack-oack" // ACK 0 after the OACK
  | "ack-advance" // an ACK for a block in the window that is not the last block
  | "ack-final" // the ACK of the last block
  | "ack-stale" // an ACK for a block already acknowledged, or a duplicate
  | "timeout"
  | "timeout-exhausted" // a timeout after the last retry
  | "client-error" // the client sent ERROR
  | "socket-error" // the client's port is gone (ICMP port unreachable)
  | "read-failed"
  | "abort"; // the server is closing

export type TransferOutcome =
  | "completed"
  | "timed-out"
  | "client-error"
  | "client-gone"
  | "read-failed"
  | "aborted"
  /** Refused before a transfer started (see the event's detail); reported by the server. */
  | "refused";

type Action =
  | "sendOack"
  | "sendWindow"
  | "resendOack"
  | "resendWindow"
  | "slideWindow"
  | "finish"
  | "giveUp"
  | "clientError"
  | "clientGone"
  | "readFailed"
  | "abort"
  | "ignore";

type Table = Record<TransferState, Partial<Record<TransferInput, readonly [TransferState, Action]>>>;

const ENDINGS = {
  "client-error": ["failed", "clientError"],
  "socket-error": ["failed", "clientGone"],
  abort: ["failed", "abort"],
} as const;

export const TRANSITIONS: Table = {
  idle: {
    start: ["sending", "sendWindow"],
    "start-oack": ["negotiating", "sendOack"],
    abort: ["failed", "abort"],
  },
  negotiating: {
    "ack-oack": ["sending", "sendWindow"],
    "ack-stale": ["negotiating", "ignore"],
    timeout: ["negotiating", "resendOack"],
    "timeout-exhausted": ["failed", "giveUp"],
    ...ENDINGS,
  },
  sending: {
    "ack-advance": ["sending", "slideWindow"],
    "ack-final": ["done", "finish"],
    "ack-stale": ["sending", "ignore"],
    timeout: ["sending", "resendWindow"],
    "timeout-exhausted": ["failed", "giveUp"],
    "read-failed": ["failed", "readFailed"],
    ...ENDINGS,
  },
  done: {},
  failed: {},
};

export interface TransferIo {
  send(packet: Buffer | Buffer[]): void;
  /** Release the transfer's socket once `last` (an ERROR for the client) is out; called once. */
  close(last?: Buffer): void;
}

export interface RetryPolicy {
  /** First retransmission timeout (the client's `timeout` option replaces it). */
  timeoutMs: number;
  /** Each timeout doubles the wait, up to this. */
  maxTimeoutMs: number;
  /** Timeouts in a row before giving up. */
  retries: number;
}

export interface TransferResult {
  outcome: TransferOutcome;
  detail: string | undefined;
  bytes: number;
  blocks: number;
  /** DATA (or OACK) packets sent again: after a timeout, or to refill a window after a gap. */
  retransmits: number;
  timeouts: number;
}

export class Transfer {
  state: TransferState = "idle";
  /** Oldest unacknowledged block. */
  private base = 1;
  /** Next block never sent in the current window. */
  private next = 1;
  private bytes = 0;
  private retransmits = 0;
  private timeouts = 0;
  private retriesLeft: number;
  private delay: number;
  private timer: NodeJS.Timeout | undefined;
  private timerDelay = 0;
  private loading = false;
  private detail: string | undefined;

  constructor(
    private readonly reader: BlockReader,
    private readonly windowsize: number,
    private readonly oack: [string, string][],
    private readonly policy: RetryPolicy,
    private readonly io: TransferIo,
    private readonly onEnd: (result: TransferResult) => void,
  ) {
    this.retriesLeft = policy.retries;
    this.delay = policy.timeoutMs;
  }

  start(): void {
    this.dispatch(this.oack.length > 0 ? "start-oack" : "start");
  }

  /** An ACK's 16-bit block number, mapped onto the window (block numbers roll over to 0). */
  ack(block16: number): void {
    if (this.state === "negotiating") {
      this.dispatch(block16 === 0 ? "ack-oack" : "ack-stale");
      return;
    }
    const top = this.next - 1;
    const acked = top - (((top & 0xffff) - block16) & 0xffff);
    if (acked < this.base) {
      this.dispatch("ack-stale");
      return;
    }
    this.dispatch(acked === this.reader.lastBlock ? "ack-final" : "ack-advance", acked);
  }

  clientError(code: number, message: string): void {
    this.detail = `client error ${code}: ${message}`;
    this.dispatch("client-error");
  }

  socketError(message: string): void {
    this.detail = message;
    this.dispatch("socket-error");
  }

  abort(): void {
    this.dispatch("abort");
  }

  private dispatch(input: TransferInput, acked = 0): void {
    const transition = TRANSITIONS[this.state][input];
    if (!transition) return;
    const [to, action] = transition;
    this.state = to;
    this.run(action, acked);
  }

  private run(action: Action, acked: number): void {
    switch (action) {
      case "ignore":
        return;
      case "sendOack":
      case "resendOack":
        if (action === "resendOack") this.retransmits++;
        this.io.send(encodeOack(this.oack));
        this.arm();
        return;
      case "sendWindow":
        this.sendWindow();
        return;
      case "resendWindow":
        this.retransmits += this.next - this.base;
        this.next = this.base;
        this.sendWindow();
        return;
      case "slideWindow":
      case "finish":
        this.bytes += this.reader.bytesIn(this.base, acked);
        this.base = acked + 1;
        // A gap seen by the client: what followed it is sent again from the block after the ACK.
        if (this.next > this.base) this.retransmits += this.next - this.base;
        this.next = this.base;
        this.retriesLeft = this.policy.retries;
        this.delay = this.policy.timeoutMs;
        if (action === "finish") {
          this.end("completed");
          return;
        }
        this.sendWindow();
        return;
      case "giveUp":
        this.end(
          "timed-out",
          `no answer after ${this.policy.retries} retries`,
          encodeError(ERR.UNDEFINED, "timed out"),
        );
        return;
      case "clientError":
        this.end("client-error");
        return;
      case "clientGone":
        this.end("client-gone");
        return;
      case "readFailed":
        this.end("read-failed", undefined, encodeError(ERR.UNDEFINED, "read error"));
        return;
      case "abort":
        this.end("aborted", undefined, encodeError(ERR.UNDEFINED, "server shutting down"));
        return;
    }
  }

  private sendWindow(): void {
    const last = this.base + this.windowsize - 1;
    if (!this.reader.has(this.base, last)) {
      if (this.loading) return;
      this.loading = true;
      // Nothing unacknowledged is in flight while the disk reads: a slow read is not a timeout.
      if (this.next === this.base) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      this.reader.load(this.base, last).then(
        () => {
          this.loading = false;
          if (this.state === "sending") this.sendWindow();
        },
        (error: unknown) => {
          this.loading = false;
          this.detail = error instanceof Error ? error.message : String(error);
          this.dispatch("read-failed");
        },
      );
      return;
    }
    const end = Math.min(last, this.reader.lastBlock ?? last);
    for (let n = this.next; n <= end; n++) this.io.send([dataHeader(n), this.reader.block(n)]);
    this.next = end + 1;
    this.arm();
  }

  /** (Re)starts the retransmission timer; the timeout handler is the only place that resends. */
  private arm(): void {
    if (this.timer && this.timerDelay === this.delay) {
      this.timer.refresh();
      return;
    }
    clearTimeout(this.timer);
    this.timerDelay = this.delay;
    this.timer = setTimeout(() => this.onTimeout(), this.delay);
  }

  private onTimeout(): void {
    this.timeouts++;
    if (this.retriesLeft <= 0) {
      this.dispatch("timeout-exhausted");
      return;
    }
    this.retriesLeft--;
    this.delay = Math.min(this.delay * 2, Math.max(this.policy.maxTimeoutMs, this.policy.timeoutMs));
    this.dispatch("timeout");
  }

  private end(outcome: TransferOutcome, detail?: string, last?: Buffer): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.io.close(last);
    this.onEnd({
      outcome,
      detail: detail ?? this.detail,
      bytes: this.bytes,
      blocks: this.base - 1,
      retransmits: this.retransmits,
      timeouts: this.timeouts,
    });
  }
}
