// `kvmstrap serve --dhcp proxy --interface br0 --listen ADDR --json` as root in a network namespace,
// beside dnsmasq as the site's DHCP (its own namespace on the same bridge): ISC dhclient sending a
// PXE ROM's vendor class takes its address from dnsmasq and the boot file from us (state "offered",
// no address offered by the proxy); tftp-hpa from the site-given address is attributed to the MAC
// through the kernel's neighbour table ("tftp"), since a proxy has no lease to go by.
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, Lines, Netns, netnsUnavailable, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { makeNetboot, stopDaemon } from "./helpers.js";

const BIN = path.resolve("bin/kvmstrap.js");
const why =
  netnsUnavailable() ??
  (has("dhclient") ? undefined : "dhclient missing (package isc-dhcp-client)") ??
  (has("dnsmasq") ? undefined : "dnsmasq missing (package dnsmasq-base)") ??
  (has("tftp") ? undefined : "tftp missing (package tftp-hpa)") ??
  (existsSync("/usr/lib/ipxe/undionly.kpxe") ? undefined : "package ipxe missing") ??
  (existsSync(path.resolve("dist/cli/serve-command.js")) ? undefined : "dist/ not built (npm run build)");
const tag = process.pid;
const SERVER_IP = "10.84.0.1";

let server: Netns;
let client: Netns;
let site: Netns;
let dir: string;
let serve: ChildProcess | undefined;
let lines: Lines;
let mac: string;

beforeAll(async () => {
  if (why) return;
  dir = tempDir("serve-proxy");
  const netboot = makeNetboot(path.join(dir, "netboot"));
  server = new Netns(`kvms-spx-${tag}`);
  client = new Netns(`kvms-spc-${tag}`);
  site = new Netns(`kvms-sps-${tag}`);
  server.bridge("br0", `${SERVER_IP}/24`);
  server.veth("vs0", "br0", client, "vc1");
  server.veth("vw0", "br0", site, "vw1", "10.84.0.2/24");
  mac = client.ip("-j", "link", "show", "vc1").match(/"address":"([0-9a-f:]{17})"/)?.[1] as string;
  site.spawn("dnsmasq", [
    ...["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=vw1", "--bind-interfaces"],
    ...["--dhcp-range=10.84.0.150,10.84.0.160,255.255.255.0,5m", `--dhcp-leasefile=${dir}/site.leases`],
    `--pid-file=${dir}/site.pid`,
  ]);
  serve = server.spawn("node", [
    BIN,
    "serve",
    ...["--dhcp", "proxy", "--interface", "br0", "--listen", SERVER_IP],
    ...["--netboot", netboot.dir, "--state-dir", path.join(dir, "state"), "--json"],
  ]);
  lines = new Lines(serve);
  await lines.wait((o) => o.type === "listening", 30_000, "kvmstrap serve listening");
}, 60_000);
afterAll(() => {
  for (const ns of [server, client, site]) ns?.destroy();
  removeTempDirs();
});

describe.skipIf(why)(`kvmstrap serve --dhcp proxy beside dnsmasq${why ? ` (skipped: ${why})` : ""}`, () => {
  it("names the boot file without offering an address; TFTP from the site's address is the node's", async () => {
    expect(lines.seen[0]).toMatchObject({
      type: "listening",
      dhcp: `proxy on br0 as ${SERVER_IP}`,
      tftp: `${SERVER_IP}:69`,
    });
    const conf = path.join(dir, "rom.conf");
    const leases = path.join(dir, "rom.leases");
    const pid = path.join(dir, "rom.pid");
    writeFileSync(
      conf,
      'option pxe-arch code 93 = unsigned integer 16;\nsend vendor-class-identifier "PXEClient:Arch:00000:UNDI:002001";\nsend pxe-arch 0;\n',
    );
    try {
      client.exec("timeout", [
        "30",
        "dhclient",
        "-1",
        "-cf",
        conf,
        "-lf",
        leases,
        "-pf",
        pid,
        "-sf",
        "/bin/true",
        "vc1",
      ]);
    } finally {
      if (existsSync(pid)) stopDaemon(readFileSync(pid, "utf8"));
    }
    const ip = /fixed-address ([\d.]+);/.exec(readFileSync(leases, "utf8"))?.[1] as string;
    expect(ip).toMatch(/^10\.84\.0\.1(5\d|60)$/); // dnsmasq's range, not ours
    const offered = await lines.wait(
      (o) => o.type === "node-state" && o.mac === mac && o.state === "offered",
      10_000,
      "offered",
    );
    expect(offered.detail).toBe("DISCOVER -> OFFER, boot file undionly.kpxe");

    client.ip("addr", "add", `${ip}/24`, "dev", "vc1");
    client.exec("tftp", [SERVER_IP, "-m", "binary", "-c", "get", "undionly.kpxe", path.join(dir, "u.kpxe")]);
    const tftp = await lines.wait(
      (o) => o.type === "node-state" && o.mac === mac && o.state === "tftp",
      10_000,
      "tftp",
    );
    expect(tftp.from).toBe("offered");
    expect(Number(tftp.durationMs)).toBeGreaterThan(0);
    await lines.wait(
      (o) => o.type === "node-progress" && o.mac === mac && o.input === "tftp-done",
      10_000,
      "tftp-done",
    );
  }, 90_000);
});
