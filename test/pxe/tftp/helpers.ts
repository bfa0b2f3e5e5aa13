// Test harness for the TFTP server: a served root in a temp dir, a server on 127.0.0.1 with a
// random port, its transfer events, and a scriptable client of our own (lossy, duplicating, many).
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { decodePacket, encodeAck, encodeRequest } from "../../../src/pxe/tftp/packet.js";
import { TftpServer, type TftpServerOptions, type TransferEvent } from "../../../src/pxe/tftp/server.js";
import { directorySource } from "../../../src/pxe/tftp/source.js";

export interface Served {
  root: string;
  server: TftpServer;
  port: number;
  events: TransferEvent[];
  /** Resolves with the next event for `file` (or one already recorded and not yet taken). */
  eventFor(file: string, timeoutMs?: number): Promise<TransferEvent>;
  stop(): Promise<void>;
}

export async function serve(
  files: Record<string, Buffer>,
  options: Partial<TftpServerOptions> = {},
): Promise<Served> {
  const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-tftp-"));
  for (const [name, data] of Object.entries(files)) writeFileSync(path.join(root, name), data);
  const events: TransferEvent[] = [];
  const waiters: { file: string; resolve: (e: TransferEvent) => void }[] = [];
  const taken = new Set<TransferEvent>();
  const server = new TftpServer({
    source: directorySource(root),
    address: "127.0.0.1",
    port: 0,
    ...options,
    onTransfer: (event) => {
      events.push(event);
      options.onTransfer?.(event);
      const i = waiters.findIndex((w) => w.file === event.file);
      if (i >= 0) {
        taken.add(event);
        waiters.splice(i, 1)[0]?.resolve(event);
      }
    },
  });
  await server.listen();
  return {
    root,
    server,
    port: server.address().port,
    events,
    eventFor(file, timeoutMs = 15_000) {
      const ready = events.find((e) => e.file === file && !taken.has(e));
      if (ready) {
        taken.add(ready);
        return Promise.resolve(ready);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no transfer event for ${file}`)), timeoutMs);
        waiters.push({
          file,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          },
        });
      });
    },
    async stop() {
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The sizes every client is tried with: empty, one 512 block, a blksize multiple, 1 MiB random. */
export function sampleFiles(blksize = 1468): Record<string, Buffer> {
  return {
    "empty.bin": Buffer.alloc(0),
    "exact512.bin": randomBytes(512),
    "multiple.bin": randomBytes(blksize * 10),
    "random1m.bin": randomBytes(1024 * 1024),
  };
}

export type AckFate = "send" | "drop" | "dup";

export interface GetOptions {
  port: number;
  file: string | Buffer;
  mode?: string;
  options?: [string, string][];
  /** What happens to the i-th ACK the client means to send (0-based, ACK 0 included). */
  ackFate?: (i: number) => AckFate;
  /** Client retransmission timeout (it resends its last ACK or the request). */
  timeoutMs?: number;
  /** Give up after this long. */
  deadlineMs?: number;
}

export interface GetResult {
  data: Buffer;
  oack: Map<string, string> | undefined;
  error: { code: number; message: string } | undefined;
  /** DATA packets received, duplicates included. */
  dataPackets: number;
  /** OACK packets received, duplicates included. */
  oackPackets: number;
}

/**
 * A TFTP read with a client of our own, following RFC 1350 and RFC 7440 as a receiver: ACK at the
 * end of each window, ACK the last in-order block again on a duplicate or a gap. The ACK fate hook
 * drops or duplicates ACKs. After the last block it stays around briefly to re-acknowledge a
 * resent last window, as real clients do.
 */
export function tftpGet(o: GetOptions): Promise<GetResult> {
  const socket = createSocket("udp4");
  const chunks: Buffer[] = [];
  const result: GetResult = {
    data: Buffer.alloc(0),
    oack: undefined,
    error: undefined,
    dataPackets: 0,
    oackPackets: 0,
  };
  let blksize = 512;
  let windowsize = 1;
  let expected = 1; // next block wanted (absolute)
  let inWindow = 0;
  let acks = 0;
  let lastAck: Buffer | undefined;
  let server: { port: number; address: string } | undefined;
  let finished = false;
  const request = encodeRequest("rrq", o.file, o.mode ?? "octet", o.options ?? []);
  const sendAck = (block: number) => {
    const fate = o.ackFate?.(acks++) ?? "send";
    lastAck = encodeAck(block);
    if (!server || fate === "drop") return;
    socket.send(lastAck, server.port, server.address);
    if (fate === "dup") socket.send(lastAck, server.port, server.address);
  };
  return new Promise((resolve, reject) => {
    const deadline = setTimeout(() => done(new Error("client deadline passed")), o.deadlineMs ?? 30_000);
    const retry = setInterval(() => {
      if (finished) return;
      if (!server) socket.send(request, o.port, "127.0.0.1");
      else if (lastAck) socket.send(lastAck, server.port, server.address);
    }, o.timeoutMs ?? 3000);
    const done = (error?: Error) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      clearInterval(retry);
      result.data = Buffer.concat(chunks);
      if (error) {
        socket.close();
        reject(error);
        return;
      }
      resolve(result);
      // Dally: keep acknowledging a resent last window for a while, then go.
      setTimeout(() => socket.close(), 1500).unref();
    };
    socket.on("message", (msg, rinfo) => {
      if (!server) server = { port: rinfo.port, address: rinfo.address };
      if (rinfo.port !== server.port) return;
      const decoded = decodePacket(msg);
      if (!decoded.ok) return;
      const p = decoded.packet;
      if (p.op === "error") {
        result.error = { code: p.code, message: p.message };
        done();
      } else if (p.op === "oack") {
        result.oackPackets++;
        if (finished || expected > 1) return;
        result.oack = p.options;
        blksize = Number(p.options.get("blksize") ?? 512);
        windowsize = Number(p.options.get("windowsize") ?? 1);
        sendAck(0);
      } else if (p.op === "data") {
        result.dataPackets++;
        if (finished) {
          if (lastAck) socket.send(lastAck, server.port, server.address);
          return;
        }
        if (p.block !== (expected & 0xffff)) {
          // A duplicate or a gap: say where we are (RFC 7440), once per stray.
          sendAck((expected - 1) & 0xffff);
          inWindow = 0;
          return;
        }
        chunks.push(Buffer.from(p.data));
        const last = p.data.length < blksize;
        expected++;
        inWindow++;
        if (last || inWindow >= windowsize) {
          inWindow = 0;
          sendAck(p.block);
        }
        if (last) done();
      }
    });
    socket.bind(0, "127.0.0.1", () => socket.send(request, o.port, "127.0.0.1"));
  });
}
