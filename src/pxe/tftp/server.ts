// A read-only TFTP server on node:dgram. The well-known socket only takes requests; each transfer
// gets its own ephemeral socket (its TID, RFC 1350), connected to the client so the kernel delivers
// only that client's packets to it: a stray packet from another TID gets ICMP port unreachable from
// the kernel instead of an ERROR 5 from us. The library logs nothing; it reports through callbacks.
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { BlockReader } from "./blocks.js";
import { cleanFileName } from "./names.js";
import { MAX_BLKSIZE, MIN_BLKSIZE, negotiate } from "./options.js";
import { decodePacket, ERR, encodeError, OP } from "./packet.js";
import { errorForOpen, type TftpFile, type TftpSource } from "./source.js";
import { type RetryPolicy, Transfer, type TransferOutcome } from "./transfer.js";

export interface TftpServerOptions {
  source: TftpSource;
  /** Address to bind; default 0.0.0.0. Transfer sockets bind the same address. */
  address?: string;
  /** Default 69; 0 picks a free port (see address()). */
  port?: number;
  /** Largest blksize granted (8..65464); default 1468, an Ethernet frame without IP fragments. */
  maxBlksize?: number;
  /** Largest windowsize granted; default 64. Memory per transfer is about windowsize x blksize. */
  maxWindowsize?: number;
  /** Transfers at once; a request beyond it is answered "server busy". Default 100. */
  maxTransfers?: number;
  /** First retransmission timeout in ms when the client sends no timeout option; default 1000. */
  timeoutMs?: number;
  /** Backoff ceiling in ms; default 8000. A client's timeout option above it is ignored. */
  maxTimeoutMs?: number;
  /** Timeouts in a row before a transfer is abandoned; default 5. */
  retries?: number;
  /** Called when a transfer starts sending (after its file opened). */
  onStart?: (info: TransferStart) => void;
  /** Called once per request that got an answer: a finished, failed or refused transfer. */
  onTransfer?: (event: TransferEvent) => void;
}

export interface TransferStart {
  file: string;
  client: string;
  mode: "octet" | "netascii";
  size: number;
  blksize: number;
  windowsize: number;
}

export interface TransferEvent {
  /** The cleaned name, or the raw one (latin1) when it was refused before cleaning succeeded. */
  file: string;
  /** "address:port" of the client's TID. */
  client: string;
  outcome: TransferOutcome;
  /** Why a transfer failed or was refused. */
  detail: string | undefined;
  /** Bytes the client acknowledged (after netascii conversion). */
  bytes: number;
  blocks: number;
  retransmits: number;
  timeouts: number;
  durationMs: number;
  blksize: number;
  windowsize: number;
}

const DEFAULTS = {
  address: "0.0.0.0",
  port: 69,
  maxBlksize: 1468,
  maxWindowsize: 64,
  maxTransfers: 100,
  timeoutMs: 1000,
  maxTimeoutMs: 8000,
  retries: 5,
};

export class TftpServer {
  private readonly config: typeof DEFAULTS;
  private socket: Socket | undefined;
  /** Requests being opened or transferred, by client "address:port" (a repeated RRQ is ignored). */
  private readonly active = new Map<string, Transfer | "opening">();
  private closing = false;

  constructor(private readonly options: TftpServerOptions) {
    this.config = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof typeof DEFAULTS)[]) {
      const value = options[key];
      if (value !== undefined) (this.config as Record<string, unknown>)[key] = value;
    }
    const { maxBlksize, maxWindowsize, maxTransfers, retries } = this.config;
    if (!Number.isInteger(maxBlksize) || maxBlksize < MIN_BLKSIZE || maxBlksize > MAX_BLKSIZE)
      throw new RangeError(
        `maxBlksize must be an integer in ${MIN_BLKSIZE}..${MAX_BLKSIZE}, got ${maxBlksize}`,
      );
    if (!Number.isInteger(maxWindowsize) || maxWindowsize < 1 || maxWindowsize > 32767)
      throw new RangeError(`maxWindowsize must be an integer in 1..32767, got ${maxWindowsize}`);
    if (!Number.isInteger(maxTransfers) || maxTransfers < 1)
      throw new RangeError(`maxTransfers must be a positive integer, got ${maxTransfers}`);
    if (!Number.isInteger(retries) || retries < 0)
      throw new RangeError(`retries must be >= 0, got ${retries}`);
  }

  /** Binds the request socket; resolves once it listens. */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = createSocket("udp4");
      socket.once("error", reject);
      socket.on("message", (msg, rinfo) => this.onRequest(socket, msg, rinfo));
      socket.bind(this.config.port, this.config.address, () => {
        socket.off("error", reject);
        // After binding, errors (e.g. ICMP feedback for an answer to a vanished client) are noise.
        socket.on("error", () => {});
        this.socket = socket;
        resolve();
      });
    });
  }

  address(): { address: string; port: number } {
    if (!this.socket) throw new Error("TFTP server is not listening");
    const { address, port } = this.socket.address();
    return { address, port };
  }

  /** Transfers in progress (including those still opening their file). */
  get transfers(): number {
    return this.active.size;
  }

  /** Stops taking requests and aborts transfers in progress (each reports outcome "aborted"). */
  async close(): Promise<void> {
    this.closing = true;
    for (const transfer of this.active.values()) if (transfer !== "opening") transfer.abort();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  private onRequest(socket: Socket, msg: Buffer, rinfo: RemoteInfo): void {
    const startedAt = performance.now();
    const client = `${rinfo.address}:${rinfo.port}`;
    const reply = (code: number, message: string) =>
      socket.send(encodeError(code, message), rinfo.port, rinfo.address);
    const decoded = decodePacket(msg);
    if (!decoded.ok) {
      // A broken request gets an answer; anything else undecodable on this port is dropped, so
      // garbage aimed at the server is not reflected.
      if (decoded.opcode === OP.RRQ || decoded.opcode === OP.WRQ) reply(ERR.ILLEGAL_OP, decoded.reason);
      return;
    }
    const packet = decoded.packet;
    if (packet.op !== "rrq" && packet.op !== "wrq") return; // strays of finished transfers
    if (this.active.has(client) || this.closing) return; // the client repeating its request
    const refuse = (file: string, code: number, detail: string) => {
      reply(code, detail);
      this.report({ file, client, outcome: "refused", detail, startedAt, blksize: 512, windowsize: 1 });
    };
    const rawName = packet.filename.toString("latin1");
    if (packet.op === "wrq") {
      refuse(rawName, ERR.ACCESS, "read-only server: writes are refused");
      return;
    }
    if (packet.mode !== "octet" && packet.mode !== "netascii") {
      refuse(rawName, ERR.ILLEGAL_OP, `unsupported mode "${packet.mode}"`);
      return;
    }
    const name = cleanFileName(packet.filename);
    if (!name.ok) {
      refuse(rawName, ERR.ACCESS, name.reason);
      return;
    }
    if (this.active.size >= this.config.maxTransfers) {
      refuse(name.name, ERR.UNDEFINED, "server busy");
      return;
    }
    this.active.set(client, "opening");
    this.open(name.name, packet.mode, packet.options, rinfo, startedAt).catch(() => {
      // open() reports its own failures; this only guards against a throwing callback.
      this.active.delete(client);
    });
  }

  private async open(
    file: string,
    mode: "octet" | "netascii",
    requested: Map<string, string>,
    rinfo: RemoteInfo,
    startedAt: number,
  ): Promise<void> {
    const client = `${rinfo.address}:${rinfo.port}`;
    let handle: TftpFile;
    try {
      handle = await this.options.source.open(file);
    } catch (error) {
      this.active.delete(client);
      const { code, message } = errorForOpen(error);
      this.socket?.send(encodeError(code, message), rinfo.port, rinfo.address);
      this.report({
        file,
        client,
        outcome: "refused",
        detail: message,
        startedAt,
        blksize: 512,
        windowsize: 1,
      });
      return;
    }
    const netascii = mode === "netascii";
    // netascii grows the file by its line ends, so its size is unknown until the end: no tsize.
    const deal = negotiate(requested, netascii ? undefined : handle.size, {
      ...this.config,
      maxTimeoutSec: Math.max(1, Math.floor(this.config.maxTimeoutMs / 1000)),
    });
    let socket: Socket;
    try {
      socket = await this.transferSocket(rinfo);
    } catch (error) {
      this.active.delete(client);
      await handle.close().catch(() => {});
      this.report({
        file,
        client,
        outcome: "refused",
        detail: String(error),
        startedAt,
        blksize: deal.blksize,
        windowsize: deal.windowsize,
      });
      return;
    }
    if (this.closing) {
      this.active.delete(client);
      socket.close();
      await handle.close().catch(() => {});
      return;
    }
    const timeoutMs = deal.timeoutSec !== undefined ? deal.timeoutSec * 1000 : this.config.timeoutMs;
    const policy: RetryPolicy = {
      timeoutMs,
      maxTimeoutMs: this.config.maxTimeoutMs,
      retries: this.config.retries,
    };
    const reader = new BlockReader(handle, deal.blksize, deal.windowsize, netascii);
    let closed = false;
    const transfer = new Transfer(
      reader,
      deal.windowsize,
      deal.acknowledged,
      policy,
      {
        send: (packet) => {
          if (!closed) socket.send(packet);
        },
        close: (last) => {
          closed = true;
          // Closing right after a send can cancel it: the farewell ERROR goes out first.
          if (last) socket.send(last, () => socket.close());
          else socket.close();
          handle.close().catch(() => {});
        },
      },
      (result) => {
        this.active.delete(client);
        this.report({
          file,
          client,
          startedAt,
          blksize: deal.blksize,
          windowsize: deal.windowsize,
          ...result,
        });
      },
    );
    socket.on("message", (msg) => {
      // Hot path: an ACK is all a sending transfer expects.
      if (msg.length >= 4 && msg[0] === 0 && msg[1] === OP.ACK) {
        transfer.ack(msg.readUInt16BE(2));
        return;
      }
      const decoded = decodePacket(msg);
      if (decoded.ok && decoded.packet.op === "error")
        transfer.clientError(decoded.packet.code, decoded.packet.message);
      // Anything else from the client's TID is ignored: it cannot make us send.
    });
    socket.on("error", (error) => transfer.socketError(`client unreachable (${error.message})`));
    this.active.set(client, transfer);
    this.options.onStart?.({
      file,
      client,
      mode,
      size: handle.size,
      blksize: deal.blksize,
      windowsize: deal.windowsize,
    });
    transfer.start();
  }

  private transferSocket(rinfo: RemoteInfo): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const socket = createSocket("udp4");
      const fail = (error: Error) => {
        socket.close();
        reject(error);
      };
      socket.once("error", fail);
      socket.bind(0, this.config.address, () => {
        socket.connect(rinfo.port, rinfo.address, () => {
          socket.off("error", fail);
          resolve(socket);
        });
      });
    });
  }

  private report(
    event: Partial<TransferEvent> &
      Pick<TransferEvent, "file" | "client" | "outcome" | "blksize" | "windowsize"> & { startedAt: number },
  ): void {
    const { startedAt, ...rest } = event;
    this.options.onTransfer?.({
      detail: undefined,
      bytes: 0,
      blocks: 0,
      retransmits: 0,
      timeouts: 0,
      ...rest,
      durationMs: performance.now() - startedAt,
    });
  }
}
