// The codec, option negotiation and name cleaning as units, then the server's answers to requests
// it must refuse or bend (WRQ, odd modes, upper-case options, broken packets), with our own client.

import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanFileName } from "../../../src/pxe/tftp/names.js";
import { negotiate } from "../../../src/pxe/tftp/options.js";
import {
  decodePacket,
  ERR,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
} from "../../../src/pxe/tftp/packet.js";
import { TRANSITIONS } from "../../../src/pxe/tftp/transfer.js";
import { type Served, serve, tftpGet } from "./helpers.js";

describe("packet codec", () => {
  it("round-trips every packet type", () => {
    const rrq = decodePacket(encodeRequest("rrq", "boot/ipxe.efi", "octet", [["blksize", "1468"]]));
    expect(rrq).toMatchObject({ ok: true, packet: { op: "rrq", mode: "octet" } });
    if (rrq.ok && rrq.packet.op === "rrq") {
      expect(rrq.packet.filename.toString()).toBe("boot/ipxe.efi");
      expect([...rrq.packet.options]).toEqual([["blksize", "1468"]]);
    }
    expect(decodePacket(encodeRequest("wrq", "x"))).toMatchObject({ ok: true, packet: { op: "wrq" } });
    const data = decodePacket(encodeData(65535, Buffer.from("abc")));
    expect(data).toMatchObject({ ok: true, packet: { op: "data", block: 65535 } });
    expect(decodePacket(encodeAck(70000))).toMatchObject({
      ok: true,
      packet: { op: "ack", block: 70000 & 0xffff },
    });
    expect(decodePacket(encodeError(ERR.NOT_FOUND, "file not found"))).toEqual({
      ok: true,
      packet: { op: "error", code: 1, message: "file not found" },
    });
    const oack = decodePacket(
      encodeOack([
        ["tsize", "42"],
        ["windowsize", "16"],
      ]),
    );
    expect(oack.ok && oack.packet.op === "oack" && [...oack.packet.options]).toEqual([
      ["tsize", "42"],
      ["windowsize", "16"],
    ]);
  });

  it("lower-cases mode and option names; the first of a repeated option wins", () => {
    const d = decodePacket(
      encodeRequest("rrq", "f", "OcTeT", [
        ["BLKSIZE", "1024"],
        ["blksize", "8"],
        ["TSize", "0"],
      ]),
    );
    expect(d.ok && d.packet.op === "rrq" && d.packet.mode).toBe("octet");
    expect(d.ok && d.packet.op === "rrq" && [...d.packet.options]).toEqual([
      ["blksize", "1024"],
      ["tsize", "0"],
    ]);
  });

  it.each([
    ["empty", Buffer.alloc(0), "shorter than an opcode"],
    ["one byte", Buffer.from([0]), "shorter than an opcode"],
    ["truncated ACK", Buffer.from([0, 4, 1]), "ACK shorter"],
    ["truncated DATA", Buffer.from([0, 3, 0]), "DATA shorter"],
    ["RRQ without NUL", Buffer.from("\x00\x01file.bin", "latin1"), "NUL-terminated"],
    ["RRQ without mode", Buffer.from("\x00\x01file.bin\x00octet", "latin1"), "NUL-terminated"],
    ["RRQ with empty name", Buffer.from("\x00\x01\x00octet\x00", "latin1"), "empty file name"],
    [
      "RRQ with a huge name",
      Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(600, 0x41), Buffer.from("\0octet\0")]),
      "too long",
    ],
    ["unknown opcode", Buffer.from([0, 9, 0, 0]), "unknown opcode 9"],
    ["opcode 0", Buffer.from([0, 0, 1, 2, 3]), "unknown opcode 0"],
  ])("refuses %s without throwing", (_name, buf, reason) => {
    const d = decodePacket(buf);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.reason).toContain(reason);
  });

  it("ignores a trailing unterminated option and a name without a value", () => {
    const buf = Buffer.from("\x00\x01f\x00octet\x00blksize\x00512\x00tsize\x00\xff\xff", "latin1");
    const d = decodePacket(buf);
    expect(d.ok && d.packet.op === "rrq" && [...d.packet.options]).toEqual([["blksize", "512"]]);
  });

  it("never throws on 20,000 random buffers", () => {
    for (let i = 0; i < 20_000; i++) decodePacket(randomBytes(i % 64));
  });
});

describe("option negotiation", () => {
  const limits = { maxBlksize: 1468, maxWindowsize: 64, maxTimeoutSec: 10 };
  const ask = (pairs: [string, string][], size: number | undefined = 1000) =>
    negotiate(new Map(pairs), size, limits);

  it("grants blksize, windowsize, timeout and tsize in the client's order", () => {
    const n = ask([
      ["tsize", "0"],
      ["blksize", "1024"],
      ["timeout", "3"],
      ["windowsize", "4"],
    ]);
    expect(n).toEqual({
      blksize: 1024,
      windowsize: 4,
      timeoutSec: 3,
      acknowledged: [
        ["tsize", "1000"],
        ["blksize", "1024"],
        ["timeout", "3"],
        ["windowsize", "4"],
      ],
    });
  });

  it("caps blksize and windowsize at the server's limits", () => {
    const n = ask([
      ["blksize", "65464"],
      ["windowsize", "65535"],
    ]);
    expect([n.blksize, n.windowsize]).toEqual([1468, 64]);
    expect(n.acknowledged).toEqual([
      ["blksize", "1468"],
      ["windowsize", "64"],
    ]);
  });

  it.each([
    ["blksize", "7"],
    ["blksize", "65465"],
    ["blksize", "12abc"],
    ["blksize", "-512"],
    ["blksize", ""],
    ["windowsize", "0"],
    ["windowsize", "65536"],
    ["timeout", "0"],
    ["timeout", "256"],
    ["timeout", "3000"], // npm tftp sends milliseconds
    ["timeout", "11"], // above the server's ceiling: a stalled client would hold its slot too long
    ["tsize", "x"],
    ["rollover", "0"],
    ["multicast", ""],
  ])("leaves out %s=%j (unknown or out of range) and keeps the defaults", (name, value) => {
    const n = ask([[name, value]]);
    expect(n).toEqual({ blksize: 512, windowsize: 1, timeoutSec: undefined, acknowledged: [] });
  });

  it("does not acknowledge tsize when the size is unknown (netascii)", () => {
    expect(negotiate(new Map([["tsize", "0"]]), undefined, limits).acknowledged).toEqual([]);
  });
});

describe("file name cleaning", () => {
  const clean = (raw: string | Buffer) =>
    cleanFileName(typeof raw === "string" ? Buffer.from(raw, "latin1") : raw);
  it.each([
    ["pxelinux.0", "pxelinux.0"],
    ["/pxelinux.0", "pxelinux.0"],
    ["//boot//./ipxe.efi", "boot/ipxe.efi"],
    ["boot\\x64\\ipxe.efi", "boot/x64/ipxe.efi"],
    ["\\boot\\ipxe.efi", "boot/ipxe.efi"],
    ["undionly.kpxe\xff\xff\xff", "undionly.kpxe"],
  ])("%j becomes %j", (raw, name) => {
    expect(clean(raw)).toEqual({ ok: true, name });
  });
  it.each([["../etc/passwd"], ["a/../../x"], ["..\\..\\x"], ["/"], ["\xff\xff"], ["a\x01b"], ["\xc3\x28"]])(
    "%j is refused",
    (raw) => {
      expect(clean(raw).ok).toBe(false);
    },
  );
});

describe("transfer state machine", () => {
  it("retransmits only on a timeout: stale ACKs lead nowhere and resend nothing", () => {
    for (const state of ["negotiating", "sending"] as const) {
      expect(TRANSITIONS[state]["ack-stale"]).toEqual([state, "ignore"]);
      const resend = Object.entries(TRANSITIONS[state])
        .filter(([, t]) => t && (t[1] === "resendWindow" || t[1] === "resendOack"))
        .map(([input]) => input);
      expect(resend).toEqual(["timeout"]);
    }
    expect(TRANSITIONS.done).toEqual({});
    expect(TRANSITIONS.failed).toEqual({});
  });
});

describe("server answers", () => {
  let served: Served;
  const file = randomBytes(300_000);
  beforeAll(async () => {
    served = await serve(
      { "f.bin": file, "t.txt": Buffer.from("a\nb\rc\r\n") },
      { timeoutMs: 150, retries: 2 },
    );
  });
  afterAll(() => served.stop());

  /** Sends one raw packet to the server port and returns the first answer (or undefined). */
  function exchange(packet: Buffer, waitMs = 500): Promise<Buffer | undefined> {
    const socket = createSocket("udp4");
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        socket.close();
        resolve(undefined);
      }, waitMs);
      socket.on("message", (msg) => {
        clearTimeout(timer);
        socket.close();
        resolve(msg);
      });
      socket.send(packet, served.port, "127.0.0.1");
    });
  }

  it("refuses a write request with an access violation", async () => {
    const answer = await exchange(encodeRequest("wrq", "upload.bin"));
    expect(answer && decodePacket(answer)).toMatchObject({
      ok: true,
      packet: { op: "error", code: ERR.ACCESS },
    });
    expect((await served.eventFor("upload.bin")).outcome).toBe("refused");
  });

  it("refuses the mail mode", async () => {
    const answer = await exchange(encodeRequest("rrq", "f.bin", "mail"));
    expect(answer && decodePacket(answer)).toMatchObject({
      ok: true,
      packet: { op: "error", code: ERR.ILLEGAL_OP },
    });
    expect((await served.eventFor("f.bin")).detail).toContain("mail");
  });

  it("answers a truncated request with an illegal-operation error", async () => {
    const answer = await exchange(Buffer.from("\x00\x01f.bin", "latin1"));
    expect(answer && decodePacket(answer)).toMatchObject({
      ok: true,
      packet: { op: "error", code: ERR.ILLEGAL_OP },
    });
  });

  it("drops other garbage silently (nothing to reflect)", async () => {
    expect(await exchange(Buffer.from([0, 9, 1, 2]), 200)).toBeUndefined();
    expect(await exchange(encodeAck(1), 200)).toBeUndefined();
  });

  it("takes upper-case option names and a tsize probe", async () => {
    const got = await tftpGet({
      port: served.port,
      file: "f.bin",
      mode: "OCTET",
      options: [
        ["BLKSIZE", "1024"],
        ["WindowSize", "8"],
        ["TSize", "0"],
        ["Timeout", "2"],
      ],
    });
    expect([...(got.oack ?? [])]).toEqual([
      ["blksize", "1024"],
      ["windowsize", "8"],
      ["tsize", String(file.length)],
      ["timeout", "2"],
    ]);
    expect(got.data.equals(file)).toBe(true);
    const event = await served.eventFor("f.bin");
    expect(event).toMatchObject({ outcome: "completed", blksize: 1024, windowsize: 8, bytes: file.length });
  });

  it("sends netascii with CR LF and CR NUL, and no tsize for it", async () => {
    const got = await tftpGet({
      port: served.port,
      file: "t.txt",
      mode: "netascii",
      options: [["tsize", "0"]],
    });
    expect(got.oack).toBeUndefined();
    expect(got.data.toString("latin1")).toBe("a\r\nb\r\0c\r\0\r\n");
  });

  it("gives up after its retries when the client never acknowledges, with an ERROR", async () => {
    const socket = createSocket("udp4");
    const seen: Buffer[] = [];
    socket.on("message", (m) => seen.push(m));
    await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
    socket.send(encodeRequest("rrq", "f.bin"), served.port, "127.0.0.1");
    const event = await served.eventFor("f.bin");
    for (let i = 0; i < 50 && seen.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    socket.close();
    expect(event).toMatchObject({ outcome: "timed-out", timeouts: 3, retransmits: 2, blocks: 0 });
    // DATA 1 three times (first send and two retries), then ERROR "timed out".
    expect(seen.map((m) => decodePacket(m)).map((d) => d.ok && d.packet.op)).toEqual([
      "data",
      "data",
      "data",
      "error",
    ]);
    // Backoff: 150, 300, 600 ms between the sends and the give-up.
    expect(event.durationMs).toBeGreaterThanOrEqual(150 + 300 + 600 - 20);
  });

  it("waits the client's timeout option (seconds) before resending, not its own default", async () => {
    const srv = await serve({ "f.bin": file }, { timeoutMs: 5000 });
    const socket = createSocket("udp4");
    const arrivals: { at: number; op: string }[] = [];
    const t0 = performance.now();
    socket.on("message", (m, rinfo) => {
      const d = decodePacket(m);
      if (d.ok) arrivals.push({ at: performance.now() - t0, op: d.packet.op });
      // ACK 0 for the OACK, then silence: DATA 1 must come again after 1 s, not 5 s.
      if (d.ok && d.packet.op === "oack") socket.send(encodeAck(0), rinfo.port, "127.0.0.1");
    });
    try {
      await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
      socket.send(encodeRequest("rrq", "f.bin", "octet", [["timeout", "1"]]), srv.port, "127.0.0.1");
      for (let i = 0; i < 300 && arrivals.filter((a) => a.op === "data").length < 2; i++)
        await new Promise((r) => setTimeout(r, 10));
      const data = arrivals.filter((a) => a.op === "data");
      expect(data.length).toBe(2);
      const gap = (data[1]?.at ?? 0) - (data[0]?.at ?? 0);
      expect(gap).toBeGreaterThan(900);
      expect(gap).toBeLessThan(2000);
    } finally {
      socket.close();
      await srv.stop();
    }
  });

  it("rolls block numbers over past 65535 (blksize 16, 70,000 blocks)", async () => {
    const big = randomBytes(16 * 70_000 + 5);
    const srv = await serve({ "big.bin": big });
    try {
      const got = await tftpGet({
        port: srv.port,
        file: "big.bin",
        options: [
          ["blksize", "16"],
          ["windowsize", "64"],
        ],
      });
      expect(got.data.equals(big)).toBe(true);
      expect(await srv.eventFor("big.bin")).toMatchObject({
        outcome: "completed",
        blocks: 70_001,
        retransmits: 0,
      });
    } finally {
      await srv.stop();
    }
  });
});
