// The file source interface (generated content, read failures), the start event and shutdown.
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { describe, expect, it } from "vitest";
import { decodePacket, ERR, encodeRequest } from "../../../src/pxe/tftp/packet.js";
import { TftpServer, type TransferEvent, type TransferStart } from "../../../src/pxe/tftp/server.js";
import { bufferFile, type TftpSource, TftpSourceError } from "../../../src/pxe/tftp/source.js";
import { tftpGet } from "./helpers.js";

async function withServer(
  source: TftpSource,
  run: (port: number, events: TransferEvent[], starts: TransferStart[], server: TftpServer) => Promise<void>,
) {
  const events: TransferEvent[] = [];
  const starts: TransferStart[] = [];
  const server = new TftpServer({
    source,
    address: "127.0.0.1",
    port: 0,
    timeoutMs: 100,
    retries: 2,
    onTransfer: (e) => events.push(e),
    onStart: (s) => starts.push(s),
  });
  await server.listen();
  try {
    await run(server.address().port, events, starts, server);
  } finally {
    await server.close();
  }
}

const until = async (cond: () => boolean) => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
};

describe("file sources", () => {
  it("serves generated content per name, and a source's own refusal code", async () => {
    const script = Buffer.from("#!ipxe\ndhcp\nchain http://10.0.0.1/node.ipxe\n");
    const source: TftpSource = {
      async open(name) {
        if (name === "boot.ipxe") return bufferFile(script);
        if (name === "secret") throw new TftpSourceError(ERR.ACCESS, "not for you");
        throw new TftpSourceError(ERR.NOT_FOUND, "no such file");
      },
    };
    await withServer(source, async (port, events, starts) => {
      const got = await tftpGet({ port, file: "/boot.ipxe", options: [["tsize", "0"]] });
      expect(got.data.equals(script)).toBe(true);
      expect(got.oack?.get("tsize")).toBe(String(script.length));
      expect(starts).toMatchObject([{ file: "boot.ipxe", mode: "octet", size: script.length, blksize: 512 }]);
      const denied = await tftpGet({ port, file: "secret" });
      expect(denied.error).toEqual({ code: ERR.ACCESS, message: "not for you" });
      await until(() => events.length === 2);
      expect(events.map((e) => [e.file, e.outcome])).toEqual([
        ["boot.ipxe", "completed"],
        ["secret", "refused"],
      ]);
    });
  });

  it("ends a transfer whose reads fail with an ERROR and outcome read-failed", async () => {
    const source: TftpSource = {
      async open() {
        return {
          size: 10_000_000,
          read: async (offset) => {
            if (offset > 0) throw new Error("disk went away");
            return randomBytes(256 * 1024);
          },
          close: async () => {},
        };
      },
    };
    await withServer(source, async (port, events) => {
      const got = await tftpGet({ port, file: "big", options: [["blksize", "1468"]] });
      expect(got.error).toEqual({ code: ERR.UNDEFINED, message: "read error" });
      await until(() => events.length === 1);
      expect(events[0]).toMatchObject({ outcome: "read-failed", detail: "disk went away" });
      expect(events[0]?.blocks).toBeGreaterThan(100);
    });
  });
});

it("does not count a slow read as a client timeout", async () => {
  const data = randomBytes(600 * 1024); // three 256 KiB read-aheads
  const source: TftpSource = {
    async open() {
      return {
        size: data.length,
        read: async (offset, length) => {
          if (offset > 0) await new Promise((r) => setTimeout(r, 350)); // > 3x the 100 ms timeout
          return data.subarray(offset, offset + length);
        },
        close: async () => {},
      };
    },
  };
  await withServer(source, async (port, events) => {
    const got = await tftpGet({ port, file: "slow", options: [["blksize", "1468"]] });
    expect(got.data.equals(data)).toBe(true);
    await until(() => events.length === 1);
    expect(events[0]).toMatchObject({ outcome: "completed", timeouts: 0, retransmits: 0 });
  });
});

describe("shutdown", () => {
  it("aborts transfers in progress with an ERROR and outcome aborted", async () => {
    const source: TftpSource = { open: async () => bufferFile(randomBytes(100_000)) };
    await withServer(source, async (port, events, _starts, server) => {
      const socket = createSocket("udp4");
      const seen: string[] = [];
      socket.on("message", (m) => {
        const d = decodePacket(m);
        if (d.ok) seen.push(d.packet.op === "error" ? `error:${d.packet.message}` : d.packet.op);
      });
      await new Promise<void>((r) => socket.bind(0, "127.0.0.1", r));
      socket.send(encodeRequest("rrq", "x"), port, "127.0.0.1");
      await until(() => seen.length === 1);
      expect(server.transfers).toBe(1);
      await server.close();
      await until(() => seen.length === 2);
      socket.close();
      expect(seen).toEqual(["data", "error:server shutting down"]);
      expect(events).toMatchObject([{ outcome: "aborted", file: "x" }]);
    });
  });
});
