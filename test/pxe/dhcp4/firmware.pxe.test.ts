// Real clients against the shipped DHCP server, in network namespaces (TCG guests, one at a time):
//  - ProxyDHCP beside dnsmasq as the site's DHCP (its own namespace, like another machine on the
//    bridge): QEMU's iPXE ROM under SeaBIOS takes dnsmasq's address and our boot file, and asks
//    for it over HTTP (iPXE gets its script URL); OVMF's own PXE client (EDK2) asks TFTP for the
//    x64 iPXE binary our proxy named;
//  - full DHCP through dnsmasq as a DHCP relay on a routed segment: the iPXE ROM gets an address
//    from our range and asks for its script.
// Full DHCP alone and OVMF's UEFI HTTP Boot (beside dnsmasq and alone) are proven through the whole
// `kvmstrap serve` in test/pxe/chain/full-dhcp.pxe.test.ts and http-boot.pxe.test.ts.
// An observer in the server namespace (a dgram listener on 69 and an HTTP listener on 8080) reports
// what the guest asks for; the TFTP and HTTP servers themselves are not part of this test.
import { copyFileSync, existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleRunner, has, Lines, Netns, netnsUnavailable, removeTempDirs, tempDir } from "./netns.js";
import type { RunnerConfig } from "./serve-runner.js";

const why =
  netnsUnavailable() ??
  (has("qemu-system-x86_64") ? undefined : "qemu-system-x86_64 missing") ??
  (has("dnsmasq") ? undefined : "dnsmasq missing (package dnsmasq-base)");
const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const tag = process.pid;
const SERVER_IP = "10.80.0.1";
const HTTP = `http://${SERVER_IP}:8080`;
const GUEST_SECONDS = 120;

let server: Netns;
let site: Netns;
let relay: Netns;
let runner: string;

beforeAll(async () => {
  if (why) return;
  server = new Netns(`kvms-d4fw-${tag}`);
  site = new Netns(`kvms-d4site-${tag}`);
  server.bridge("br0", `${SERVER_IP}/24`);
  server.tap("tap0", "br0");
  server.veth("vs0", "br0", site, "vs1", "10.80.0.2/24");
  // A routed segment behind a DHCP relay (dnsmasq --dhcp-relay): 10.90.0.0/24 via 10.80.0.3.
  relay = new Netns(`kvms-d4rly-${tag}`);
  server.veth("vr0", "br0", relay, "vr1", "10.80.0.3/24");
  relay.bridge("brR", "10.90.0.1/24");
  relay.tap("tapR", "brR");
  relay.exec("sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
  server.ip("route", "add", "10.90.0.0/24", "via", "10.80.0.3");
  runner = await bundleRunner();
}, 60_000);
afterAll(() => {
  for (const ns of [server, site, relay]) ns?.destroy();
  removeTempDirs();
});

const OBSERVER = `
const dgram = require("node:dgram"), http = require("node:http");
const out = (o) => process.stdout.write(JSON.stringify(o) + "\\n");
const u = dgram.createSocket("udp4");
u.on("message", (m) => { if (m.readUInt16BE(0) === 1) out({ type: "tftp", file: m.subarray(2, m.indexOf(0, 2)).toString() }); });
u.bind(69);
http.createServer((req, res) => { out({ type: "http", path: req.url }); res.statusCode = 404; res.end(); }).listen(8080);
out({ type: "ready" });`;

async function start(cmd: string, args: string[], what: string) {
  const child = server.spawn(cmd, args);
  const lines = new Lines(child);
  await lines.wait((o) => o.type === "ready" || o.type === "fatal", 20_000, what);
  expect(lines.seen.find((o) => o.type === "fatal")).toBeUndefined();
  return { child, lines };
}

function guest(firmware: "seabios" | "ovmf", mac: string, ns = server, tap = "tap0") {
  // romfile= empty under OVMF: EDK2's own virtio-net driver and PXE client, not iPXE's EFI ROM.
  const nic = `virtio-net-pci,netdev=n0,mac=${mac}${firmware === "seabios" ? "" : ",romfile="}`;
  const fw: string[] = [];
  if (firmware !== "seabios") {
    const vars = path.join(tempDir("ovmf"), "vars.fd");
    copyFileSync(OVMF_VARS, vars);
    fw.push(
      "-drive",
      `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`,
      "-drive",
      `if=pflash,format=raw,file=${vars}`,
    );
  }
  const child = ns.spawn("timeout", [
    String(GUEST_SECONDS),
    "qemu-system-x86_64",
    ...[
      "-accel",
      "tcg",
      "-m",
      "256",
      "-display",
      "none",
      "-serial",
      "none",
      "-monitor",
      "none",
      "-boot",
      "n",
    ],
    ...fw,
    ...["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", nic],
  ]);
  return {
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode === null ? child.on("exit", r) : r(null)));
    },
  };
}

function siteDhcp() {
  const dir = tempDir("site");
  const child = site.spawn("dnsmasq", [
    "--no-daemon",
    "--conf-file=/dev/null",
    "--port=0",
    "--interface=vs1",
    "--bind-interfaces",
    "--dhcp-range=10.80.0.100,10.80.0.150,255.255.255.0,5m",
    `--dhcp-leasefile=${dir}/leases`,
    `--pid-file=${dir}/pid`,
    "--log-dhcp",
    "--log-facility=-",
  ]);
  let log = "";
  child.stderr?.on("data", (d: Buffer) => {
    log += d.toString();
  });
  return { log: () => log, stop: () => child.kill("SIGTERM") };
}

const mayOvmf = existsSync(OVMF_CODE) && existsSync(OVMF_VARS);

describe.skipIf(why)(`real PXE firmware against the DHCP server${why ? ` (skipped: ${why})` : ""}`, () => {
  it(
    "ProxyDHCP beside dnsmasq: SeaBIOS + iPXE ROM leases from dnsmasq and fetches the script URL our proxy named",
    async () => {
      const mac = "52:54:00:80:00:01";
      const dhcp = siteDhcp();
      const obs = await start("node", ["-e", OBSERVER], "observer");
      const cfg: RunnerConfig = { binding: { interface: "br0" }, serverIp: SERVER_IP, httpBase: HTTP };
      const proxy = await start("node", [runner, JSON.stringify(cfg)], "proxy");
      const vm = guest("seabios", mac);
      try {
        const got = await obs.lines.wait(
          (o) => o.type === "http",
          GUEST_SECONDS * 1000,
          "the guest's HTTP request",
        );
        expect(got.path).toBe("/boot/52-54-00-80-00-01.ipxe");
        const offer = proxy.lines.seen.find((o) => o.type === "reply" && o.mac === mac);
        expect(offer).toMatchObject({
          request: 1,
          reply: 2,
          yiaddr: "0.0.0.0",
          bootFile: `${HTTP}/boot/52-54-00-80-00-01.ipxe`,
        });
        // The address came from the site's DHCP, not from us.
        expect(dhcp.log()).toMatch(/DHCPACK\(vs1\) 10\.80\.0\.1\d\d 52:54:00:80:00:01/);
      } finally {
        await vm.stop();
        proxy.child.kill("SIGTERM");
        obs.child.kill("SIGTERM");
        dhcp.stop();
      }
    },
    (GUEST_SECONDS + 90) * 1000,
  );

  it.skipIf(!mayOvmf)(
    `ProxyDHCP beside dnsmasq: OVMF's own PXE client asks TFTP for ipxe.efi${mayOvmf ? "" : " (skipped: package ovmf missing)"}`,
    async () => {
      const mac = "52:54:00:80:00:02";
      const dhcp = siteDhcp();
      const obs = await start("node", ["-e", OBSERVER], "observer");
      const cfg: RunnerConfig = { binding: { interface: "br0" }, serverIp: SERVER_IP, httpBase: HTTP };
      const proxy = await start("node", [runner, JSON.stringify(cfg)], "proxy");
      const vm = guest("ovmf", mac);
      try {
        const got = await obs.lines.wait(
          (o) => o.type === "tftp",
          GUEST_SECONDS * 1000,
          "the guest's TFTP read request",
        );
        expect(got.file).toBe("ipxe.efi");
        // EDK2 took the file from our OFFER (discovery control bit 3) and then REQUESTed its
        // address from dnsmasq, which the proxy let pass.
        expect(proxy.lines.seen).toContainEqual({
          type: "ignore",
          mac,
          reason: "REQUEST for another server",
        });
        expect(proxy.lines.seen.find((o) => o.type === "reply" && o.mac === mac)).toMatchObject({
          yiaddr: "0.0.0.0",
          bootFile: "ipxe.efi",
        });
        expect(dhcp.log()).toMatch(/DHCPACK\(vs1\) 10\.80\.0\.1\d\d 52:54:00:80:00:02/);
      } finally {
        await vm.stop();
        proxy.child.kill("SIGTERM");
        obs.child.kill("SIGTERM");
        dhcp.stop();
      }
    },
    (GUEST_SECONDS + 90) * 1000,
  );

  it(
    "full DHCP through a real relay (dnsmasq --dhcp-relay): replies unicast to the relay reach an iPXE guest on the far segment",
    async () => {
      const mac = "52:54:00:80:00:05";
      const leaseFile = path.join(tempDir("leases"), "leases.json");
      const dir = tempDir("relay");
      const relayd = relay.spawn("dnsmasq", [
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=brR",
        "--dhcp-relay=10.90.0.1,10.80.0.1",
        `--pid-file=${dir}/pid`,
        "--log-dhcp",
        "--log-facility=-",
      ]);
      const obs = await start("node", ["-e", OBSERVER], "observer");
      const cfg: RunnerConfig = {
        binding: { interface: "br0" },
        serverIp: SERVER_IP,
        httpBase: HTTP,
        full: {
          range: "10.90.0.100-10.90.0.110",
          subnetMask: "255.255.255.0",
          leaseFile,
          leaseTime: 600,
          router: "10.90.0.1",
        },
      };
      const dhcp = await start("node", [runner, JSON.stringify(cfg)], "full DHCP");
      const vm = guest("seabios", mac, relay, "tapR");
      try {
        const got = await obs.lines.wait(
          (o) => o.type === "http",
          GUEST_SECONDS * 1000,
          "the guest's HTTP request",
        );
        expect(got.path).toBe("/boot/52-54-00-80-00-05.ipxe");
        const replies = dhcp.lines.seen.filter((o) => o.type === "reply" && o.mac === mac);
        expect(replies.length).toBeGreaterThanOrEqual(2);
        for (const r of replies) expect(r.to).toEqual({ address: "10.90.0.1", port: 67 });
        expect(replies.find((r) => r.reply === 5)).toMatchObject({ yiaddr: "10.90.0.100" });
      } finally {
        await vm.stop();
        dhcp.child.kill("SIGTERM");
        obs.child.kill("SIGTERM");
        relayd.kill("SIGTERM");
      }
    },
    (GUEST_SECONDS + 90) * 1000,
  );
});
