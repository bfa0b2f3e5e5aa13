// UEFI HTTP Boot through `kvmstrap serve`: OVMF's own HTTP Boot client (EDK2 HttpBootDxe, option 60
// "HTTPClient:Arch:00016", option 93 = 16) gets from kvmstrap's DHCP the http:// URL of Debian's
// ipxe.efi (/ipxe/ipxe.efi, option 60 "HTTPClient" echoed), fetches it over HTTP (no TFTP at all),
// and iPXE goes on to its script, the kernel and the initrd. The guest is killed once the server has
// sent both (the fleet tier's rack rollout boots on into the appliance).
//  - How HTTP Boot is chosen: Debian 12's OVMF (2022.11) reads opt/org.tianocore/IPv4PXESupport and
//    IPv6PXESupport from fw_cfg (OvmfPkg/Library/PxeBcPcdProducerLib); set to "n", the PXE driver
//    makes no boot options, and the first network boot option `-boot n` tries is "UEFI HTTPv4".
//  - Against full DHCP alone (`--dhcp full`): one offer carries the address and the URL.
//  - Against ProxyDHCP beside dnsmasq as the site DHCP (`--dhcp proxy`): dnsmasq's offer carries the
//    address, kvmstrap's (yiaddr 0.0.0.0, no address) the URL; EDK2 HttpBootDhcp4 classes it as a
//    proxy offer with a URI and boots from it. It works: the test asserts it.
// Serial logs and the event stream: iso-build/out/test-logs/pxe-httpboot-*.
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, Netns, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { ensureNetboot, LOG_DIR, NETBOOT, type NetbootManifest, netbootManifest } from "./netboot.js";
import {
  bootUntilFetched,
  chainUnavailable,
  entered,
  expectFetched,
  expectTimeline,
  FETCH_MS,
  type NodeStatus,
  nodeStatus,
  ovmfUnavailable,
  type Serve,
  startServe,
} from "./rig.js";

const why = chainUnavailable() ?? ovmfUnavailable();
const dnsmasqWhy = has("dnsmasq") ? undefined : "dnsmasq missing (package dnsmasq-base)";
const SERVER_IP = "10.83.0.1";
const SERVER = `http://${SERVER_IP}:8080`;
const IPXE_URL = `${SERVER}/ipxe/ipxe.efi`;
const FULL_MAC = "52:54:00:83:00:01";
const PROXY_MAC = "52:54:00:83:00:02";
const EVENTS = "pxe-httpboot-serve.jsonl";

let ns: Netns;
let site: Netns;
let serve: Serve | undefined;
let missing: string | undefined;
let manifest: NetbootManifest;

const common = ["--interface", "br0", "--http-port", "8080", "--netboot", NETBOOT];

beforeAll(async () => {
  if (why) return;
  missing = await ensureNetboot();
  if (missing) return;
  manifest = await netbootManifest();
  await mkdir(LOG_DIR, { recursive: true });
  writeFileSync(path.join(LOG_DIR, EVENTS), "");
  ns = new Netns(`kvms-hb-${process.pid}`);
  ns.bridge("br0", `${SERVER_IP}/24`);
  ns.tap("tap0", "br0");
  site = new Netns(`kvms-hbsite-${process.pid}`);
  ns.veth("vs0", "br0", site, "vs1", "10.83.0.2/24");
}, 1_800_000);
afterAll(async () => {
  await serve?.stop();
  for (const n of [ns, site]) n?.destroy();
  removeTempDirs();
});

/** What is the same for both DHCP modes: the chain, the URL, HTTP instead of TFTP, EDK2's console. */
function expectHttpBoot(s: Serve, node: NodeStatus, serial: string): string {
  expectTimeline(node, ["offered", "tftp", "ipxe", "script", "kernel", "initrd"]);
  expectFetched(s, node.mac, manifest);
  const offered = entered(node, "offered")?.detail ?? "";
  expect(offered).toContain(`DISCOVER -> OFFER, boot file ${IPXE_URL}`);
  // The iPXE binary came over HTTP, from the URL the offer named; nothing was asked of TFTP.
  expect(entered(node, "tftp")).toMatchObject({
    input: "tftp-done",
    detail: "ipxe.efi over HTTP (HTTP Boot)",
  });
  expect(s.lines.seen.filter((o) => o.type === "transfer")).toEqual([]);
  // EDK2's HTTP Boot client, not its PXE client, on the serial console.
  expect(serial).toContain("Start HTTP Boot over IPv4");
  expect(serial).not.toContain("Start PXE over IPv4");
  expect(serial).toContain(IPXE_URL);
  return offered;
}

describe.skipIf(why)(`UEFI HTTP Boot (OVMF) through kvmstrap serve${why ? ` (skipped: ${why})` : ""}`, () => {
  it(
    "full DHCP alone: the offer names http://.../ipxe/ipxe.efi, EDK2 fetches it over HTTP, iPXE's script, kernel, initrd",
    async (ctx) => {
      if (missing) ctx.skip(missing);
      serve = await startServe(
        ns,
        [
          "--dhcp",
          "full",
          "--dhcp-range",
          "10.83.0.200-10.83.0.219",
          "--state-dir",
          tempDir("hb-full"),
          ...common,
        ],
        EVENTS,
      );
      const s = serve;
      const r = await bootUntilFetched(
        ns,
        s,
        "ovmf-http",
        FULL_MAC,
        path.join(LOG_DIR, "pxe-httpboot-full.log"),
      );
      const node = nodeStatus(ns, SERVER, FULL_MAC);
      const offered = expectHttpBoot(s, node, r.serial);
      expect(offered).toMatch(/, address 10\.83\.0\.2(0\d|1\d)$/);
      expect(await s.stop()).toBe(0);
      serve = undefined;
    },
    FETCH_MS + 60_000,
  );

  it.skipIf(dnsmasqWhy)(
    `ProxyDHCP beside dnsmasq: dnsmasq leases the address, kvmstrap's proxy offer names the URL, and EDK2 boots from it${dnsmasqWhy ? ` (skipped: ${dnsmasqWhy})` : ""}`,
    async (ctx) => {
      if (missing) ctx.skip(missing);
      await serve?.stop(); // still running if the test before failed early
      const dir = tempDir("hb-site");
      const dnsmasq = site.spawn("dnsmasq", [
        ...["--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=vs1", "--bind-interfaces"],
        "--dhcp-range=10.83.0.100,10.83.0.150,255.255.255.0,30m",
        ...[`--dhcp-leasefile=${dir}/leases`, `--pid-file=${dir}/pid`, "--log-dhcp", "--log-facility=-"],
      ]);
      let siteLog = "";
      dnsmasq.stderr?.on("data", (d: Buffer) => {
        siteLog += d.toString();
      });
      try {
        serve = await startServe(
          ns,
          ["--dhcp", "proxy", "--state-dir", tempDir("hb-proxy"), ...common],
          EVENTS,
        );
        const s = serve;
        const r = await bootUntilFetched(
          ns,
          s,
          "ovmf-http",
          PROXY_MAC,
          path.join(LOG_DIR, "pxe-httpboot-proxy.log"),
        );
        const node = nodeStatus(ns, SERVER, PROXY_MAC);
        const offered = expectHttpBoot(s, node, r.serial);
        expect(offered).not.toContain("address"); // a proxy offer: yiaddr 0.0.0.0
        // The address came from the site's DHCP, for the HTTP Boot client and again for iPXE.
        expect(siteLog).toMatch(new RegExp(`DHCPACK\\(vs1\\) 10\\.83\\.0\\.1\\d\\d ${PROXY_MAC}`));
        expect(siteLog).toMatch(/vendor class: HTTPClient:Arch:00016/);
        expect(await s.stop()).toBe(0);
        serve = undefined;
      } finally {
        dnsmasq.kill("SIGTERM");
      }
    },
    FETCH_MS + 60_000,
  );
});
