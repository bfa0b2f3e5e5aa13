// A client that drops and duplicates ACKs. The server must finish every transfer, and must resend
// only after a timeout: every DATA (and OACK) packet the client sees is either a first send or a
// retransmission the server counted, and duplicated ACKs alone cause none (Sorcerer's Apprentice).
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AckFate, type Served, serve, tftpGet } from "./helpers.js";

const file = randomBytes(1468 * 120 + 77); // 121 blocks at 1468
let served: Served;
beforeAll(async () => {
  served = await serve({ "f.bin": file }, { timeoutMs: 60, maxTimeoutMs: 240, retries: 8 });
});
afterAll(() => served.stop());

const windows = [1, 4, 16];
const always =
  (fate: AckFate) =>
  (_i: number): AckFate =>
    fate;

describe.each(windows)("windowsize %i", (windowsize) => {
  const options: [string, string][] = [
    ["blksize", "1468"],
    ["windowsize", String(windowsize)],
  ];

  it("with every ACK sent twice: no retransmission at all, one DATA per block", async () => {
    const got = await tftpGet({ port: served.port, file: "f.bin", options, ackFate: always("dup") });
    const event = await served.eventFor("f.bin");
    expect(got.data.equals(file)).toBe(true);
    expect(event).toMatchObject({ outcome: "completed", blocks: 121, retransmits: 0, timeouts: 0 });
    expect(got.dataPackets).toBe(121);
    expect(got.oackPackets).toBe(1);
  });

  it("with ACKs dropped and duplicated: completes, and resends only what its timeouts explain", async () => {
    // Drop every 5th ACK, duplicate every 3rd (some twice over when they are also re-sent).
    const fate = (i: number): AckFate => (i % 5 === 4 ? "drop" : i % 3 === 0 ? "dup" : "send");
    const got = await tftpGet({ port: served.port, file: "f.bin", options, ackFate: fate, timeoutMs: 5000 });
    const event = await served.eventFor("f.bin");
    expect(got.data.equals(file)).toBe(true);
    expect(event.outcome).toBe("completed");
    expect(event.timeouts).toBeGreaterThan(0);
    // Every packet seen is a first send (OACK + one DATA per block) or a counted retransmission...
    expect(got.oackPackets + got.dataPackets).toBe(1 + event.blocks + event.retransmits);
    // ...and each retransmission follows a timeout: at most one window per timeout.
    expect(event.retransmits).toBeLessThanOrEqual(event.timeouts * windowsize);
    expect(event.retransmits).toBeGreaterThanOrEqual(event.timeouts);
  });
});

it("a stale ACK from an earlier window never triggers a send (raw exchange)", async () => {
  // Lock-step by hand: after ACK 1 the server sends DATA 2; repeating ACK 0 and ACK 1 then brings
  // nothing until the server's own timeout.
  const { createSocket } = await import("node:dgram");
  const { decodePacket, encodeAck, encodeError, encodeRequest } = await import(
    "../../../src/pxe/tftp/packet.js"
  );
  const socket = createSocket("udp4");
  const seen: { at: number; block: number }[] = [];
  let tid = 0;
  const t0 = performance.now();
  socket.on("message", (msg, rinfo) => {
    tid = rinfo.port;
    const d = decodePacket(msg);
    if (d.ok && d.packet.op === "data") seen.push({ at: performance.now() - t0, block: d.packet.block });
  });
  await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
  socket.send(encodeRequest("rrq", "f.bin"), served.port, "127.0.0.1");
  const until = async (n: number) => {
    while (seen.length < n) await new Promise((r) => setTimeout(r, 2));
  };
  await until(1);
  socket.send(encodeAck(1), tid, "127.0.0.1");
  await until(2);
  const before = seen.length;
  for (let i = 0; i < 20; i++) socket.send(encodeAck(i % 2), tid, "127.0.0.1");
  await new Promise((r) => setTimeout(r, 40)); // shorter than the server's 60 ms timeout
  expect(seen.length).toBe(before);
  await until(before + 1); // the timeout's resend of DATA 2
  expect(seen[before]?.block).toBe(2);
  await new Promise((r) => socket.send(encodeError(0, "done"), tid, "127.0.0.1", r));
  socket.close();
  const event = await served.eventFor("f.bin");
  expect(event.outcome).toBe("client-error");
});
