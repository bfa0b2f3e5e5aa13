// A TFTP read as a PXE ROM does it (RFC 1350, with blksize, tsize and RFC 7440 windowsize), from a
// given local address so the server can tell the node by its leased address. The data is hashed
// as it arrives, not kept: a thousand nodes fetching iPXE need no thousand copies of it.
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { decodePacket, encodeAck, encodeRequest } from "../../../src/pxe/tftp/packet.js";

export interface TftpGet {
  server: string;
  port: number;
  /** Local address to send from (the node's lease); undefined: any. */
  local?: string | undefined;
  file: string;
  blksize?: number;
  /** 1: lock-step, without asking for the option. */
  windowsize?: number;
  /** Client retransmission timeout (it resends its last ACK or the request). */
  timeoutMs?: number;
  deadlineMs?: number;
}

export interface TftpResult {
  bytes: number;
  sha256: string;
  /** The tsize the server announced, if any. */
  tsize: number | undefined;
  /** Requests or ACKs the client resent after its timeout. */
  resends: number;
}

export function tftpGet(o: TftpGet): Promise<TftpResult> {
  const socket = createSocket("udp4");
  const hash = createHash("sha256");
  const options: [string, string][] = [
    ["tsize", "0"],
    ["blksize", String(o.blksize ?? 1456)],
  ];
  if ((o.windowsize ?? 1) > 1) options.push(["windowsize", String(o.windowsize)]);
  const request = encodeRequest("rrq", o.file, "octet", options);
  let blksize = 512;
  let windowsize = 1;
  let expected = 1;
  let inWindow = 0;
  let bytes = 0;
  let tsize: number | undefined;
  let resends = 0;
  let tid: number | undefined;
  let lastAck: Buffer | undefined;
  let finished = false;
  return new Promise((resolve, reject) => {
    const retry = setInterval(() => {
      if (finished) return;
      resends++;
      if (tid === undefined) socket.send(request, o.port, o.server);
      else if (lastAck) socket.send(lastAck, tid, o.server);
    }, o.timeoutMs ?? 2000);
    const deadline = setTimeout(
      () => done(new Error(`${o.file}: no end within ${o.deadlineMs ?? 60_000} ms`)),
      o.deadlineMs ?? 60_000,
    );
    const done = (error?: Error) => {
      if (finished) return;
      finished = true;
      clearInterval(retry);
      clearTimeout(deadline);
      // The final ACK leaves before the socket closes; closing at once could cancel it.
      setTimeout(() => socket.close(), 200).unref();
      if (error) reject(error);
      else resolve({ bytes, sha256: hash.digest("hex"), tsize, resends });
    };
    const ack = (block: number) => {
      lastAck = encodeAck(block);
      if (tid !== undefined) socket.send(lastAck, tid, o.server);
    };
    socket.on("error", (e) => done(e));
    socket.on("message", (msg, rinfo) => {
      tid ??= rinfo.port;
      if (rinfo.port !== tid || finished) return;
      const d = decodePacket(msg);
      if (!d.ok) return;
      const p = d.packet;
      if (p.op === "error") return done(new Error(`${o.file}: TFTP error ${p.code} ${p.message}`));
      if (p.op === "oack") {
        if (expected !== 1) return;
        blksize = Number(p.options.get("blksize") ?? 512);
        windowsize = Number(p.options.get("windowsize") ?? 1);
        const t = p.options.get("tsize");
        if (t !== undefined) tsize = Number(t);
        ack(0);
        return;
      }
      if (p.op !== "data") return;
      if (p.block !== (expected & 0xffff)) {
        // A duplicate or a gap: say where we are (RFC 7440).
        ack((expected - 1) & 0xffff);
        inWindow = 0;
        return;
      }
      hash.update(p.data);
      bytes += p.data.length;
      expected++;
      const last = p.data.length < blksize;
      if (last || ++inWindow >= windowsize) {
        inWindow = 0;
        ack(p.block);
      }
      if (last) done();
    });
    socket.bind(0, o.local, () => socket.send(request, o.port, o.server));
  });
}
