// The incoming-interface problem on a multi-homed host, measured on real sockets: one network
// namespace (the server) with two bridges, each with a client namespace behind a veth. A client
// broadcasts a PXE DHCPDISCOVER on one bridge or the other.
//  - a server bound to the provisioning bridge (SO_BINDTODEVICE, src/pxe/dhcp4/native.ts) answers
//    the client on that bridge and never the one on the other bridge;
//  - plain dgram sockets (what Node offers without the addon), measured: bound to 0.0.0.0:67 or
//    255.255.255.255:67 they receive the broadcasts of both bridges (and, with no route, cannot
//    even broadcast the reply: ENETUNREACH); bound to the bridge's address they receive none.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeClient } from "../../../src/pxe/dhcp4/client.js";
import { decodePacket, encodePacket, MessageType, messageType, Opt } from "../../../src/pxe/dhcp4/packet.js";
import { bundleRunner, Lines, Netns, netnsUnavailable, removeTempDirs } from "./netns.js";
import { discover, request } from "./packets.js";
import type { RunnerConfig } from "./serve-runner.js";

const why = netnsUnavailable();
const tag = process.pid;
let server: Netns;
let clientA: Netns;
let clientB: Netns;
let runner: string;

beforeAll(async () => {
  if (why) return;
  server = new Netns(`kvms-d4s-${tag}`);
  clientA = new Netns(`kvms-d4a-${tag}`);
  clientB = new Netns(`kvms-d4b-${tag}`);
  server.bridge("brA", "10.71.0.1/24");
  server.bridge("brB", "10.72.0.1/24");
  server.veth("vA0", "brA", clientA, "vA1", "10.71.0.50/24");
  server.veth("vB0", "brB", clientB, "vB1", "10.72.0.50/24");
  clientA.ip("route", "add", "default", "dev", "vA1");
  clientB.ip("route", "add", "default", "dev", "vB1");
  runner = await bundleRunner();
}, 60_000);
afterAll(() => {
  for (const ns of [server, clientA, clientB]) ns?.destroy();
  removeTempDirs();
});

// Sends `hex` (repeated `count` times) from `fromPort` to `to` ("addr" for port 67, or "addr:port"), and collects what comes back to
// that port for `ms`.
const SENDER = `
const dgram = require("node:dgram");
const [hex, to, fromPort, count, ms] = process.argv.slice(1);
const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
const got = [];
s.on("message", (m, r) => got.push({ from: r.address, port: r.port, hex: m.toString("hex") }));
s.bind(Number(fromPort), async () => {
  s.setBroadcast(true);
  const payloads = hex.split(",").map((h) => Buffer.from(h, "hex"));
  for (let i = 0; i < Number(count); i++) {
    const [host, port] = to.split(":");
    await new Promise((r) => s.send(payloads[i % payloads.length], Number(port || 67), host, r));
  }
  setTimeout(() => { console.log(JSON.stringify(got)); s.close(); }, Number(ms));
});`;

async function send(ns: Netns, hex: string[], to: string, fromPort: number, count: number, ms = 1500) {
  const child = ns.spawn("node", [
    "-e",
    SENDER,
    hex.join(","),
    to,
    String(fromPort),
    String(count),
    String(ms),
  ]);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => child.on("exit", r));
  return JSON.parse(out || "[]") as { from: string; port: number; hex: string }[];
}

// Broadcasts one DISCOVER from port 68 and collects what comes back to port 68 for `ms`.
const CLIENT = `
const dgram = require("node:dgram");
const [hex, ms] = process.argv.slice(1);
const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
const got = [];
s.on("message", (m, r) => got.push({ from: r.address, hex: m.toString("hex") }));
s.bind(68, () => {
  s.setBroadcast(true);
  s.send(Buffer.from(hex, "hex"), 67, "255.255.255.255");
  setTimeout(() => { console.log(JSON.stringify(got)); s.close(); }, Number(ms));
});`;

async function ask(ns: Netns, mac: string): Promise<{ from: string; hex: string }[]> {
  const pkt = discover(
    [
      [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00000:UNDI:002001")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 0])],
    ],
    mac,
  );
  const child = ns.spawn("node", ["-e", CLIENT, encodePacket(pkt).toString("hex"), "1500"]);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  await new Promise((r) => child.on("exit", r));
  return JSON.parse(out || "[]");
}

async function startServer(cfg: RunnerConfig) {
  const child = server.spawn("node", [runner, JSON.stringify(cfg)]);
  const lines = new Lines(child);
  await lines.wait((o) => o.type === "ready" || o.type === "fatal", 20_000, "server ready");
  expect(lines.seen.find((o) => o.type === "fatal")).toBeUndefined();
  return {
    lines,
    stop: async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.on("exit", r));
    },
  };
}

describe.skipIf(why)(`DHCP on one interface of a multi-homed host${why ? ` (skipped: ${why})` : ""}`, () => {
  it("bound to brA (SO_BINDTODEVICE): answers the client on brA, never the one on brB", async () => {
    const s = await startServer({
      binding: { interface: "brA" },
      serverIp: "10.71.0.1",
      httpBase: "http://10.71.0.1",
    });
    try {
      const onA = await ask(clientA, "02:00:00:00:0a:01");
      const onB = await ask(clientB, "02:00:00:00:0b:01");
      expect(onA).toHaveLength(1);
      const reply = decodePacket(Buffer.from(onA[0]?.hex ?? "", "hex"));
      if (!reply.ok) throw new Error(reply.error.reason);
      expect(messageType(reply.value)).toBe(MessageType.OFFER);
      expect(describeClient(reply.value).mac).toBe("02:00:00:00:0a:01");
      expect(reply.value.file).toBe("undionly.kpxe");
      expect(onB).toEqual([]);
      // The server never even saw brB's request.
      expect(s.lines.seen.filter((o) => o.mac === "02:00:00:00:0b:01")).toEqual([]);
    } finally {
      await s.stop();
    }
  }, 40_000);

  it("answers a relay (giaddr) by unicast to the relay's port 67", async () => {
    const s = await startServer({
      binding: { interface: "brA" },
      serverIp: "10.71.0.1",
      httpBase: "http://10.71.0.1",
    });
    try {
      const pkt = discover(
        [
          [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00007:UNDI:003000")],
          [Opt.CLIENT_ARCH, Buffer.from([0, 7])],
        ],
        "02:00:00:00:0a:07",
      );
      pkt.giaddr = "10.71.0.50";
      pkt.hops = 1;
      const got = await send(clientA, [encodePacket(pkt).toString("hex")], "10.71.0.1", 67, 1);
      expect(got.map((g) => [g.from, g.port])).toEqual([["10.71.0.1", 67]]);
      const reply = decodePacket(Buffer.from(got[0]?.hex ?? "", "hex"));
      expect(reply.ok && [reply.value.giaddr, reply.value.file]).toEqual(["10.71.0.50", "ipxe.efi"]);
      expect(s.lines.seen).toContainEqual(
        expect.objectContaining({ type: "reply", to: { address: "10.71.0.50", port: 67 } }),
      );
    } finally {
      await s.stop();
    }
  }, 40_000);

  it("answers a PXE REQUEST on port 4011 with an ACK unicast back to the client's address and port", async () => {
    const s = await startServer({
      binding: { interface: "brA" },
      serverIp: "10.71.0.1",
      httpBase: "http://10.71.0.1",
    });
    try {
      const pkt = request(
        MessageType.REQUEST,
        [
          [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00007:UNDI:003000")],
          [Opt.CLIENT_ARCH, Buffer.from([0, 7])],
        ],
        "02:00:00:00:0a:09",
      );
      pkt.ciaddr = "10.71.0.50";
      pkt.flags = 0;
      const got = await send(clientA, [encodePacket(pkt).toString("hex")], "10.71.0.1:4011", 4011, 1);
      expect(got.map((g) => [g.from, g.port])).toEqual([["10.71.0.1", 4011]]);
      const reply = decodePacket(Buffer.from(got[0]?.hex ?? "", "hex"));
      if (!reply.ok) throw new Error(reply.error.reason);
      expect(messageType(reply.value)).toBe(MessageType.ACK);
      expect([reply.value.yiaddr, reply.value.file]).toEqual(["0.0.0.0", "ipxe.efi"]);
    } finally {
      await s.stop();
    }
  }, 40_000);

  it("stays up through 5,000 malformed datagrams and still answers a real request after them", async () => {
    const s = await startServer({
      binding: { interface: "brA" },
      serverIp: "10.71.0.1",
      httpBase: "http://10.71.0.1",
    });
    try {
      const good = encodePacket(
        discover([
          [Opt.VENDOR_CLASS, Buffer.from("PXEClient")],
          [Opt.CLIENT_ARCH, Buffer.from([0, 0])],
        ]),
      );
      const junk = [
        Buffer.alloc(3),
        good.subarray(0, 239),
        Buffer.concat([good.subarray(0, 240), Buffer.from([60, 250, 1])]),
        Buffer.alloc(1400, 0xff),
      ];
      await send(
        clientA,
        junk.map((b) => b.toString("hex")),
        "255.255.255.255",
        68,
        5000,
        200,
      );
      // UDP may drop part of a flood; count what arrived once the server has caught up.
      const errors = () => s.lines.seen.filter((o) => o.type === "decode-error").length;
      for (let last = -1; last !== errors(); ) {
        last = errors();
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(errors()).toBeGreaterThan(1000);
      expect(await ask(clientA, "02:00:00:00:0a:08")).toHaveLength(1);
    } finally {
      await s.stop();
    }
  }, 60_000);

  // What plain dgram offers, measured: which bridges' broadcasts reach a socket bound each way.
  // Any event naming the client's MAC (a reply, a send error, an ignore) means it was received.
  it.each([
    ["0.0.0.0", ["A", "B"]],
    ["255.255.255.255", ["A", "B"]],
    ["10.71.0.1", []],
  ])(
    "measured: a plain socket bound to %s:67 receives broadcasts from bridges %j",
    async (address, expected) => {
      const s = await startServer({
        binding: { address },
        serverIp: "10.71.0.1",
        httpBase: "http://10.71.0.1",
      });
      try {
        await ask(clientA, "02:00:00:00:0a:02");
        await ask(clientB, "02:00:00:00:0b:02");
        const saw = (mac: string) => s.lines.seen.some((o) => o.mac === mac);
        const got = [saw("02:00:00:00:0a:02") ? "A" : "", saw("02:00:00:00:0b:02") ? "B" : ""].filter(
          Boolean,
        );
        expect(got).toEqual(expected);
      } finally {
        await s.stop();
      }
    },
    40_000,
  );
});
