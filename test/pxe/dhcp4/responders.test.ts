import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { bootPolicy, decideBoot } from "../../../src/pxe/boot-policy.js";
import { type BootDecision, describeClient } from "../../../src/pxe/dhcp4/client.js";
import { respondFull } from "../../../src/pxe/dhcp4/full.js";
import { JsonFileLeaseStore, LeaseTable, parseRange } from "../../../src/pxe/dhcp4/leases.js";
import {
  decodeEncapsulated,
  decodePacket,
  encodePacket,
  ipBytes,
  MessageType,
  messageType,
  Opt,
  type Packet,
} from "../../../src/pxe/dhcp4/packet.js";
import { respondProxy } from "../../../src/pxe/dhcp4/proxy.js";
import { discover, request } from "./packets.js";

const SERVER = "10.50.0.1";
const policy = { httpBase: "http://10.50.0.1:8080" };
const pxeBios: [number, Buffer][] = [
  [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00000:UNDI:002001")],
  [Opt.CLIENT_ARCH, Buffer.from([0, 0])],
];
const pxeX64: [number, Buffer][] = [
  [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00007:UNDI:003000")],
  [Opt.CLIENT_ARCH, Buffer.from([0, 7])],
  [Opt.CLIENT_UUID, Buffer.from([0, ...Array.from({ length: 16 }, (_, i) => 0xa0 + i)])],
];
const decide = (p: Packet): BootDecision => decideBoot(policy, describeClient(p));
const wire = (p: Packet): Packet => {
  const d = decodePacket(encodePacket(p));
  if (!d.ok) throw new Error(d.error.reason);
  return d.value;
};

function proxy(p: Packet, port = 67, srcPort = 68) {
  return respondProxy({ serverIp: SERVER }, p, describeClient(p), decide(p), port, srcPort);
}

describe("boot policy", () => {
  const c = (extra: [number, Buffer][]) => describeClient(discover(extra));
  it("picks the iPXE binary by option 93 and ignores non-PXE clients", () => {
    expect(decideBoot(policy, c(pxeBios))).toEqual({ kind: "boot", bootFile: "undionly.kpxe" });
    expect(decideBoot(policy, c(pxeX64))).toEqual({ kind: "boot", bootFile: "ipxe.efi" });
    const ebc = [
      [Opt.VENDOR_CLASS, Buffer.from("PXEClient")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 9])],
    ] as [number, Buffer][];
    expect(decideBoot({ ...policy, files: { x64Efi: "snponly.efi" } }, c(ebc))).toMatchObject({
      bootFile: "snponly.efi",
    });
    const arm = [
      [Opt.VENDOR_CLASS, Buffer.from("PXEClient")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 11])],
    ] as [number, Buffer][];
    expect(decideBoot(policy, c(arm))).toMatchObject({ bootFile: "ipxe-arm64.efi" });
    expect(decideBoot(policy, c([]))).toMatchObject({ kind: "ignore" });
    const odd = [
      [Opt.VENDOR_CLASS, Buffer.from("PXEClient")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 99])],
    ] as [number, Buffer][];
    expect(decideBoot(policy, c(odd))).toMatchObject({ kind: "ignore", reason: /architecture 99/ });
  });

  it("sends iPXE (user class or option 175) its per-node script URL, not a binary", () => {
    expect(decideBoot(policy, c([...pxeBios, [Opt.USER_CLASS, Buffer.from("iPXE")]]))).toEqual({
      kind: "boot",
      bootFile: "http://10.50.0.1:8080/boot/52-54-00-aa-bb-cc.ipxe",
      httpClient: false,
    });
    expect(decideBoot(policy, c([...pxeX64, [Opt.IPXE_ENCAP, Buffer.from([19, 1, 1, 255])]]))).toMatchObject({
      bootFile: /\.ipxe$/,
    });
  });

  it("gives UEFI HTTP Boot (option 60 HTTPClient, arch 16) an http URL with option 60 echoed", () => {
    const http = c([
      [Opt.VENDOR_CLASS, Buffer.from("HTTPClient:Arch:00016:UNDI:003000")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 16])],
    ]);
    expect(decideBoot(policy, http)).toEqual({
      kind: "boot",
      bootFile: "http://10.50.0.1:8080/ipxe/ipxe.efi",
      httpClient: true,
    });
  });

  it("lets the application veto a client through the Booter seam", async () => {
    const b = bootPolicy({
      ...policy,
      skip: (cl) => (cl.mac.endsWith("cc") ? "installed: boots from disk" : undefined),
    });
    expect(await b.decide(c(pxeBios))).toEqual({ kind: "ignore", reason: "installed: boots from disk" });
  });
});

describe("ProxyDHCP responder", () => {
  it("answers a PXE DISCOVER with a broadcast OFFER carrying boot info and never an address", () => {
    const req = discover(pxeX64);
    const r = proxy(req);
    if ("ignore" in r) throw new Error(r.ignore);
    expect(r.to).toEqual({ address: "255.255.255.255", port: 68 });
    const reply = wire(r.reply);
    expect(messageType(reply)).toBe(MessageType.OFFER);
    expect(reply.yiaddr).toBe("0.0.0.0");
    expect(reply.xid).toBe(req.xid);
    expect(reply.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(reply.options.get(Opt.VENDOR_CLASS)?.toString()).toBe("PXEClient");
    expect(reply.options.get(Opt.SERVER_ID)).toEqual(ipBytes(SERVER));
    expect(reply.siaddr).toBe(SERVER);
    expect(reply.file).toBe("ipxe.efi");
    const pxe = decodeEncapsulated(reply.options.get(Opt.VENDOR_SPECIFIC) as Buffer);
    expect(pxe.ok && pxe.value.get(6)).toEqual(Buffer.from([8])); // discovery control: take the boot file
    expect(reply.options.get(Opt.CLIENT_UUID)).toEqual(req.options.get(Opt.CLIENT_UUID));
  });

  it("stays silent for non-PXE clients, non-DISCOVERs on 67 and REQUESTs meant for the site DHCP", () => {
    expect(proxy(discover())).toMatchObject({ ignore: /not a PXE/ });
    const noMac = discover(pxeBios);
    noMac.hlen = 0;
    expect(proxy(noMac)).toMatchObject({ ignore: /not Ethernet/ });
    expect(proxy(request(MessageType.RELEASE, pxeBios))).toMatchObject({ ignore: /not for a ProxyDHCP/ });
    const site = request(MessageType.REQUEST, [...pxeBios, [Opt.SERVER_ID, ipBytes("10.50.0.254")]]);
    expect(proxy(site)).toMatchObject({ ignore: /another server/ });
    const ours = request(MessageType.REQUEST, [...pxeBios, [Opt.SERVER_ID, ipBytes(SERVER)]]);
    expect(proxy(ours)).toMatchObject({ reply: { yiaddr: "0.0.0.0" } });
  });

  it("answers the port-4011 REQUEST with an ACK unicast back to the client's address and port", () => {
    const req = request(MessageType.REQUEST, pxeX64);
    req.ciaddr = "10.50.0.77";
    req.flags = 0;
    const r = proxy(req, 4011, 4011);
    if ("ignore" in r) throw new Error(r.ignore);
    expect(messageType(r.reply)).toBe(MessageType.ACK);
    expect(r.to).toEqual({ address: "10.50.0.77", port: 4011 });
    expect(r.reply.yiaddr).toBe("0.0.0.0");
    expect(proxy(discover(pxeX64), 4011)).toMatchObject({ ignore: /on port 4011/ });
  });

  it("replies to a relay (giaddr) by unicast to the relay's port 67, never a broadcast", () => {
    const req = discover(pxeBios);
    req.giaddr = "10.60.0.1";
    const r = proxy(req);
    if ("ignore" in r) throw new Error(r.ignore);
    expect(r.to).toEqual({ address: "10.60.0.1", port: 67 });
    expect(r.reply.giaddr).toBe("10.60.0.1");
  });

  it("puts an iPXE script URL longer than the file field in option 67 only", () => {
    const req = discover([...pxeBios, [Opt.USER_CLASS, Buffer.from("iPXE")]]);
    const long = `http://${"a".repeat(130)}/x.ipxe`;
    const r = respondProxy(
      { serverIp: SERVER },
      req,
      describeClient(req),
      { kind: "boot", bootFile: long },
      67,
      68,
    );
    if ("ignore" in r) throw new Error(r.ignore);
    const reply = wire(r.reply);
    expect(reply.file).toBe("");
    expect(reply.options.get(Opt.BOOTFILE_NAME)?.toString()).toBe(long);
  });
});

describe("full DHCP responder", () => {
  const cfg = {
    serverIp: SERVER,
    subnetMask: "255.255.255.0",
    router: SERVER,
    dns: [SERVER],
    leaseTime: 600,
  };
  const range = parseRange("10.50.0.100-10.50.0.102");
  if (!range) throw new Error("range");
  const run = (t: LeaseTable, p: Packet, now = 1000) =>
    respondFull(cfg, t, p, describeClient(p), decide(p), 68, now);

  it("parses ranges strictly", () => {
    expect(parseRange("10.0.0.9-10.0.0.1")).toBeUndefined();
    expect(parseRange("10.0.0.1-10.0.0.300")).toBeUndefined();
    expect(parseRange("10.0.0.1 - 10.0.0.9")).toEqual({ first: 0x0a000001, last: 0x0a000009 });
  });

  it("DISCOVER -> OFFER with an address and boot file; REQUEST -> ACK; RENEW keeps it; wrong address -> NAK", () => {
    const t = new LeaseTable(range);
    const offer = run(t, discover(pxeBios));
    if ("ignore" in offer) throw new Error(offer.ignore);
    expect(messageType(offer.reply)).toBe(MessageType.OFFER);
    expect(offer.reply.yiaddr).toBe("10.50.0.100");
    expect(offer.reply.file).toBe("undionly.kpxe");
    expect(offer.reply.options.get(Opt.LEASE_TIME)?.readUInt32BE()).toBe(600);
    const sel = request(MessageType.REQUEST, [
      ...pxeBios,
      [Opt.SERVER_ID, ipBytes(SERVER)],
      [Opt.REQUESTED_IP, ipBytes("10.50.0.100")],
    ]);
    const ack = run(t, sel);
    expect(ack).toMatchObject({ reply: { yiaddr: "10.50.0.100" }, changed: true });
    expect(t.all()).toEqual([{ mac: "52:54:00:aa:bb:cc", ip: "10.50.0.100", expires: 1600, state: "bound" }]);
    const renew = request(MessageType.REQUEST, pxeBios);
    renew.ciaddr = "10.50.0.100";
    renew.flags = 0;
    const r2 = run(t, renew, 1200);
    expect(r2).toMatchObject({ to: { address: "10.50.0.100", port: 68 } });
    expect(t.all()[0]?.expires).toBe(1800);
    const wrong = request(MessageType.REQUEST, [[Opt.REQUESTED_IP, ipBytes("10.50.0.101")]]);
    const nak = run(t, wrong);
    if ("ignore" in nak) throw new Error(nak.ignore);
    expect(messageType(nak.reply)).toBe(MessageType.NAK);
  });

  it("hands each MAC its own address, runs out cleanly, and frees on RELEASE and expiry", () => {
    const t = new LeaseTable(range);
    const macs = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"];
    const ips = macs.map((m) => {
      const r = run(t, discover([], m));
      return "ignore" in r ? r.ignore : r.reply.yiaddr;
    });
    expect(ips).toEqual(["10.50.0.100", "10.50.0.101", "10.50.0.102", "address pool exhausted"]);
    // Offers lapse after offerHold (60 s): the fourth client then gets the first address.
    const later = run(t, discover([], macs[3]), 1061);
    expect("reply" in later && later.reply.yiaddr).toBe("10.50.0.100");
    const rel = request(MessageType.RELEASE, [], macs[3]);
    rel.ciaddr = "10.50.0.100";
    run(
      t,
      request(
        MessageType.REQUEST,
        [
          [Opt.SERVER_ID, ipBytes(SERVER)],
          [Opt.REQUESTED_IP, ipBytes("10.50.0.100")],
        ],
        macs[3],
      ),
      1061,
    );
    expect(run(t, rel, 1062)).toMatchObject({ ignore: "released", changed: true });
    expect(t.all().find((l) => l.ip === "10.50.0.100")).toBeUndefined();
  });

  it("fills a 1,000-address pool with 1,000 clients, each its own address, in linear time", () => {
    const big = parseRange("10.50.0.0-10.50.3.231");
    if (!big) throw new Error("range");
    const t = new LeaseTable(big);
    const wide = { ...cfg, subnetMask: "255.255.252.0" };
    const start = performance.now();
    const ips = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const mac = `02:00:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
      const p = discover([], mac);
      const r = respondFull(wide, t, p, describeClient(p), { kind: "ignore", reason: "" }, 68, 1000);
      if ("reply" in r) ips.add(r.reply.yiaddr);
    }
    expect(ips.size).toBe(1000);
    expect(performance.now() - start).toBeLessThan(1000); // a scan from the range start each time took 1.3 s
  });

  it("holds a lapsed lease for its returning client instead of letting another take it meanwhile", () => {
    const t = new LeaseTable(range, [
      { mac: "52:54:00:aa:bb:cc", ip: "10.50.0.100", expires: 900, state: "bound" },
    ]);
    const back = run(t, discover(), 1000);
    expect("reply" in back && back.reply.yiaddr).toBe("10.50.0.100");
    expect(back.changed).toBe(true);
    const other = run(t, discover([], "02:00:00:00:00:07"), 1001);
    expect("reply" in other && other.reply.yiaddr).toBe("10.50.0.101");
  });

  it("DECLINE holds the address back; INFORM gets configuration without a lease", () => {
    const t = new LeaseTable(range);
    run(t, discover());
    expect(run(t, request(MessageType.DECLINE, [[Opt.REQUESTED_IP, ipBytes("10.50.0.100")]]))).toMatchObject({
      changed: true,
    });
    const again = run(t, discover());
    expect("reply" in again && again.reply.yiaddr).toBe("10.50.0.101");
    const inform = request(MessageType.INFORM, pxeBios);
    inform.ciaddr = "10.50.0.200";
    const r = run(t, inform);
    if ("ignore" in r) throw new Error(r.ignore);
    expect(r.reply.yiaddr).toBe("0.0.0.0");
    expect(r.reply.options.has(Opt.LEASE_TIME)).toBe(false);
    expect(r.to.address).toBe("10.50.0.200");
  });

  it("answers a relayed request by unicast to the relay, and ignores relays from other subnets", () => {
    const t = new LeaseTable(range);
    const req = discover(pxeBios);
    req.giaddr = "10.50.0.254";
    expect(run(t, req)).toMatchObject({ to: { address: "10.50.0.254", port: 67 } });
    req.giaddr = "10.70.0.1";
    expect(run(t, req)).toMatchObject({ ignore: /not on the served subnet/ });
  });

  const dir = mkdtempSync(path.join(os.tmpdir(), "kvms-leases-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it("persists leases atomically to JSON and restores them after a restart", async () => {
    const store = new JsonFileLeaseStore(path.join(dir, "leases.json"));
    expect(await store.load()).toEqual([]);
    const t = new LeaseTable(range);
    run(t, discover());
    run(
      t,
      request(MessageType.REQUEST, [
        [Opt.SERVER_ID, ipBytes(SERVER)],
        [Opt.REQUESTED_IP, ipBytes("10.50.0.100")],
      ]),
    );
    await store.save(t.all());
    expect(JSON.parse(readFileSync(store.file, "utf8")).leases).toHaveLength(1);
    const restarted = new LeaseTable(range, await store.load());
    // A client that lost its state asks again after the restart: same address, not a new one.
    const again = run(restarted, discover([], "52:54:00:aa:bb:cc"), 1100);
    expect("reply" in again && again.reply.yiaddr).toBe("10.50.0.100");
    const other = run(restarted, discover([], "02:00:00:00:00:09"), 1100);
    expect("reply" in other && other.reply.yiaddr).toBe("10.50.0.101");
  });
});
