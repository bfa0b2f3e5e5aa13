// `kvmstrap serve --dhcp full --interface br0` as root in a network namespace, walked through the
// early boot chain by real clients in another namespace (no firmware: that is test/pxe/chain/):
// ISC dhclient sending a PXE ROM's vendor class and architecture gets an address and undionly.kpxe
// (state "offered"); tftp-hpa fetches it from the leased address (the server attributes the
// transfer to the MAC through its lease: "tftp"); dhclient with iPXE's user class gets the generic
// script URL ("ipxe"); curl fetches the node's script and kernel ("script", "kernel"). Every state
// change in the --json stream carries its duration; the lease survives a restart.
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, Lines, Netns, netnsUnavailable, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { makeNetboot, sha256, stopDaemon } from "./helpers.js";

const BIN = path.resolve("bin/kvmstrap.js");
const why =
  netnsUnavailable() ??
  (has("dhclient") ? undefined : "dhclient missing (package isc-dhcp-client)") ??
  (has("tftp") ? undefined : "tftp missing (package tftp-hpa)") ??
  (existsSync("/usr/lib/ipxe/undionly.kpxe") ? undefined : "package ipxe missing") ??
  (existsSync(path.resolve("dist/cli/serve-command.js")) ? undefined : "dist/ not built (npm run build)");
const tag = process.pid;
const SERVER_IP = "10.83.0.1";
const RANGE = "10.83.0.100-10.83.0.110";

let server: Netns;
let client: Netns;
let dir: string;
let netboot: ReturnType<typeof makeNetboot>;
let serve: { child: ChildProcess; lines: Lines } | undefined;
let mac: string;

async function startServe() {
  const child = server.spawn("node", [
    BIN,
    "serve",
    ...["--dhcp", "full", "--dhcp-range", RANGE, "--interface", "br0"],
    ...["--netboot", netboot.dir, "--state-dir", path.join(dir, "state"), "--json"],
  ]);
  const lines = new Lines(child);
  await lines.wait((o) => o.type === "listening", 30_000, "kvmstrap serve listening");
  serve = { child, lines };
  return lines;
}

async function stopServe(): Promise<number | null> {
  const s = serve;
  serve = undefined;
  if (!s) return null;
  const exited = new Promise<number | null>((r) => s.child.once("exit", (code) => r(code)));
  s.child.kill("SIGTERM");
  return exited;
}

/** One DHCP exchange by dhclient with the given extra configuration; returns the leased address. */
function dhclient(name: string, conf: string): string {
  const cf = path.join(dir, `${name}.conf`);
  const lf = path.join(dir, `${name}.leases`);
  const pf = path.join(dir, `${name}.pid`);
  writeFileSync(cf, conf);
  try {
    client.exec("timeout", [
      "30",
      "dhclient",
      "-1",
      "-cf",
      cf,
      "-lf",
      lf,
      "-pf",
      pf,
      "-sf",
      "/bin/true",
      "vc1",
    ]);
  } finally {
    if (existsSync(pf)) stopDaemon(readFileSync(pf, "utf8"));
  }
  const m = /fixed-address ([\d.]+);/.exec(readFileSync(lf, "utf8"));
  if (!m?.[1]) throw new Error(`dhclient ${name}: no lease in ${lf}`);
  return m[1];
}

const PXE_ROM = `option pxe-arch code 93 = unsigned integer 16;
send vendor-class-identifier "PXEClient:Arch:00000:UNDI:002001";
send pxe-arch 0;
`;
const IPXE = `${PXE_ROM}send user-class "iPXE";\n`;

beforeAll(async () => {
  if (why) return;
  dir = tempDir("serve-dhcp");
  netboot = makeNetboot(path.join(dir, "netboot"));
  server = new Netns(`kvms-svd-${tag}`);
  client = new Netns(`kvms-svc-${tag}`);
  server.bridge("br0", `${SERVER_IP}/24`);
  server.veth("vs0", "br0", client, "vc1");
  mac = client.ip("-j", "link", "show", "vc1").match(/"address":"([0-9a-f:]{17})"/)?.[1] as string;
  await startServe();
}, 60_000);
afterAll(async () => {
  await stopServe();
  for (const ns of [server, client]) ns?.destroy();
  removeTempDirs();
});

const stateChanges = () =>
  (serve?.lines.seen ?? []).filter((o) => o.type === "node-state" && o.mac === mac) as {
    state: string;
    from: string;
    input: string;
    durationMs: number;
    detail?: string;
  }[];

describe.skipIf(why)(
  `kvmstrap serve --dhcp full in a network namespace${why ? ` (skipped: ${why})` : ""}`,
  () => {
    it("walks offered -> tftp -> ipxe -> script -> kernel with real clients, each change with its duration", async () => {
      const lines = serve?.lines as Lines;
      const ip = dhclient("rom", PXE_ROM);
      expect(ip).toMatch(/^10\.83\.0\.1(0\d|10)$/);
      await lines.wait(
        (o) => o.type === "node-state" && o.mac === mac && o.state === "offered",
        10_000,
        "offered",
      );

      client.ip("addr", "add", `${ip}/24`, "dev", "vc1");
      const kpxe = path.join(dir, "undionly.kpxe");
      client.exec("tftp", [SERVER_IP, "-m", "binary", "-c", "get", "undionly.kpxe", kpxe]);
      expect(sha256(readFileSync(kpxe))).toBe(sha256(readFileSync("/usr/lib/ipxe/undionly.kpxe")));
      await lines.wait(
        (o) => o.type === "node-progress" && o.mac === mac && o.input === "tftp-done",
        10_000,
        "tftp-done",
      );

      client.ip("addr", "del", `${ip}/24`, "dev", "vc1");
      expect(dhclient("ipxe", IPXE)).toBe(ip);
      const toIpxe = await lines.wait(
        (o) => o.type === "node-state" && o.mac === mac && o.state === "ipxe",
        10_000,
        "ipxe",
      );
      expect(toIpxe.detail).toContain(`boot file http://${SERVER_IP}:8080/boot.ipxe`);

      client.ip("addr", "add", `${ip}/24`, "dev", "vc1");
      const generic = client.exec("curl", ["-sS", "--fail", `http://${SERVER_IP}:8080/boot.ipxe`]);
      expect(generic).toContain(`\${mac:hexhyp}`);
      const script = client.exec("curl", [
        "-sS",
        "--fail",
        `http://${SERVER_IP}:8080/boot/${mac.replaceAll(":", "-")}.ipxe`,
      ]);
      const kernelUrl = /^kernel (\S+)/m.exec(script)?.[1] as string;
      expect(kernelUrl).toContain(`http://${SERVER_IP}:8080/netboot/vmlinuz`);
      // Without ?node= the server still knows whose kernel this is: the address is in its leases.
      const kernel = client.exec("curl", [
        "-sS",
        "--fail",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        kernelUrl.split("?")[0] as string,
      ]);
      expect(Number(kernel)).toBe((netboot.files.vmlinuz as Buffer).length);
      await lines.wait(
        (o) => o.type === "node-progress" && o.mac === mac && o.input === "http-done",
        10_000,
        "kernel sent",
      );

      const changes = stateChanges();
      expect(changes.map((c) => c.state)).toEqual(["offered", "tftp", "ipxe", "script", "kernel"]);
      for (const c of changes) expect(c.durationMs).toBeGreaterThanOrEqual(0);
      // The time in "tftp" spans the transfer and the wait for iPXE's DHCP: more than nothing.
      expect(changes.find((c) => c.state === "ipxe")?.durationMs).toBeGreaterThan(0);
      const leases = JSON.parse(readFileSync(path.join(dir, "state", "leases.json"), "utf8")).leases;
      expect(leases).toContainEqual(expect.objectContaining({ mac, ip, state: "bound" }));
      client.ip("addr", "del", `${ip}/24`, "dev", "vc1");
    }, 120_000);

    it("stops cleanly on SIGTERM and keeps the lease across a restart", async () => {
      const before = JSON.parse(readFileSync(path.join(dir, "state", "leases.json"), "utf8")).leases;
      expect(await stopServe()).toBe(0);
      await startServe();
      const ip = before.find((l: { mac: string }) => l.mac === mac)?.ip;
      expect(dhclient("again", PXE_ROM)).toBe(ip);
    }, 90_000);
  },
);
