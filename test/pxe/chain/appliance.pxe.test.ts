// The whole boot chain on real firmware into the real appliance: in network namespaces, the shipped
// `kvmstrap serve --dhcp proxy` beside dnsmasq as the site's DHCP; a QEMU guest under SeaBIOS (QEMU's
// iPXE ROM) and one under OVMF (EDK2's own PXE client, then iPXE's ipxe.efi over TFTP) each boot the
// appliance's netboot set (iso-build/out/netboot: kernel and initrd over HTTP, the squashfs fetched
// by the initrd with retries and its sha256 checked) until the appliance's agent reports in. The
// server's timeline (`kvmstrap serve status --json`) then shows every state with its duration.
// Guests run one after another (2 cores, TCG): each boot takes minutes. Serial logs and the
// server's event stream are kept in iso-build/out/test-logs/pxe-chain-*.
import { copyFileSync, createWriteStream, existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { has, Lines, Netns, netnsUnavailable, removeTempDirs, tempDir } from "../dhcp4/netns.js";
import { ensureNetboot, LOG_DIR, NETBOOT, netbootManifest } from "./netboot.js";

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
const IPXE_EFI = "/usr/lib/ipxe/ipxe.efi";
const BIN = path.resolve("bin/kvmstrap.js");
const why =
  netnsUnavailable() ??
  (has("qemu-system-x86_64") ? undefined : "qemu-system-x86_64 missing") ??
  (has("dnsmasq") ? undefined : "dnsmasq missing (package dnsmasq-base)") ??
  (existsSync(path.resolve("dist/cli/serve-command.js")) ? undefined : "dist/ not built (npm run build)");
const ovmfWhy = !existsSync(OVMF_CODE)
  ? "package ovmf missing"
  : !existsSync(IPXE_EFI)
    ? "package ipxe missing (ipxe.efi)"
    : undefined;

const tag = process.pid;
const SERVER_IP = "10.81.0.1";
const SERVER = `http://${SERVER_IP}:8080`;
/** Power-on to the appliance's first event, per guest (TCG on a busy 2-core machine). */
const GUEST_MS = Number(process.env.KVMSTRAP_PXE_CHAIN_TIMEOUT ?? 1200) * 1000;

const SEABIOS_MAC = "52:54:00:81:00:01";
const OVMF_MAC = "52:54:00:81:00:02";

let server: Netns;
let site: Netns;
let missing: string | undefined;
let serve: { lines: Lines; stop: () => void } | undefined;
let siteLog = "";

function startSiteDhcp(): void {
  const dir = tempDir("chain-site");
  const child = site.spawn("dnsmasq", [
    "--no-daemon",
    "--conf-file=/dev/null",
    "--port=0",
    "--interface=vs1",
    "--bind-interfaces",
    "--dhcp-range=10.81.0.100,10.81.0.150,255.255.255.0,30m",
    `--dhcp-leasefile=${dir}/leases`,
    `--pid-file=${dir}/pid`,
    "--log-dhcp",
    "--log-facility=-",
  ]);
  child.stderr?.on("data", (d: Buffer) => {
    siteLog += d.toString();
  });
}

async function startServe(): Promise<void> {
  const state = tempDir("chain-state");
  const answers = tempDir("chain-answers");
  // The SeaBIOS node is known, with an answer (no install: the agent fetches it and stops there);
  // the OVMF node is unknown to the server, as a new machine on the rack would be.
  await writeFile(path.join(answers, "n01.yaml"), "version: 1\nkvm:\n  nested: true\n");
  await writeFile(
    path.join(answers, "nodes.yaml"),
    `nodes:\n  - mac: ${SEABIOS_MAC}\n    name: chain-seabios\n    answer: n01.yaml\n`,
  );
  const child = server.spawn("node", [
    BIN,
    "serve",
    "--dhcp",
    "proxy",
    "--interface",
    "br0",
    "--http-port",
    "8080",
    "--netboot",
    NETBOOT,
    "--nodes",
    path.join(answers, "nodes.yaml"),
    "--state-dir",
    state,
    "--json",
  ]);
  const events = createWriteStream(path.join(LOG_DIR, "pxe-chain-serve.jsonl"));
  child.stdout?.on("data", (d: Buffer) => events.write(d));
  const lines = new Lines(child);
  await lines.wait((o) => o.type === "listening" || o.type === "fatal", 30_000, "kvmstrap serve listening");
  serve = {
    lines,
    stop: () => {
      child.kill("SIGTERM");
      events.end();
    },
  };
}

beforeAll(async () => {
  if (why) return;
  missing = await ensureNetboot();
  if (missing) return;
  await mkdir(LOG_DIR, { recursive: true });
  server = new Netns(`kvms-ch-${tag}`);
  site = new Netns(`kvms-chsite-${tag}`);
  server.bridge("br0", `${SERVER_IP}/24`);
  server.tap("tap0", "br0");
  server.veth("vs0", "br0", site, "vs1", "10.81.0.2/24");
  startSiteDhcp();
  await startServe();
}, 1_800_000);
afterAll(() => {
  serve?.stop();
  for (const ns of [server, site]) ns?.destroy();
  removeTempDirs();
});

function guest(firmware: "seabios" | "ovmf", mac: string, log: string) {
  // romfile= empty under OVMF: EDK2's own virtio-net driver and PXE client, not iPXE's EFI ROM.
  const nic = `virtio-net-pci,netdev=n0,mac=${mac}${firmware === "ovmf" ? ",romfile=" : ""}`;
  const fw: string[] = [];
  if (firmware === "ovmf") {
    const vars = path.join(tempDir("chain-ovmf"), "vars.fd");
    copyFileSync(OVMF_VARS, vars);
    fw.push("-M", "q35", "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`);
    fw.push("-drive", `if=pflash,format=raw,file=${vars}`);
  }
  // 2 GiB: the initrd keeps the 300 MiB squashfs in RAM beside the running live system.
  const child = server.spawn("qemu-system-x86_64", [
    ...["-accel", "tcg", "-m", "2048", "-smp", "1", "-display", "none", "-monitor", "none"],
    ...["-serial", `file:${log}`, "-boot", "n", "-no-reboot"],
    ...fw,
    ...["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", nic],
  ]);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return {
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null) child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode === null ? child.on("exit", r) : r(null)));
    },
  };
}

type Timeline = { state: string; from: string; durationMs: number; input: string; detail?: string };
type NodeStatus = { mac: string; state: string; elapsedMs: number; timeline: Timeline[] };

async function status(): Promise<NodeStatus[]> {
  const out = server.exec("node", [BIN, "serve", "status", "--server", SERVER, "--json"]);
  return (JSON.parse(out) as { nodes: NodeStatus[] }).nodes;
}

/** Boots one guest until the server hears appliance-up (or the node stalls or fails). */
async function bootToApplianceUp(firmware: "seabios" | "ovmf", mac: string) {
  const log = path.join(LOG_DIR, `pxe-chain-${firmware}.log`);
  const vm = guest(firmware, mac, log);
  const t = Date.now();
  try {
    const lines = serve?.lines as Lines;
    const end = await lines.wait(
      (o) =>
        o.type === "node-state" &&
        o.mac === mac &&
        ["appliance-up", "stalled", "failed"].includes(String(o.state)),
      GUEST_MS,
      `${firmware}: the appliance's appliance-up at the server (serial log ${log})`,
    );
    const seconds = (Date.now() - t) / 1000;
    const serial = readFileSync(log, "latin1");
    expect(end.state, `${JSON.stringify(end)}\nserial tail:\n${serial.slice(-3000)}\n${vm.stderr()}`).toBe(
      "appliance-up",
    );
    // The agent's status line on the serial console, once its event was taken. The line may still
    // be on its way through systemd: give it a moment.
    const marker =
      firmware === "seabios"
        ? "KVMSTRAP-AGENT: answer-fetched"
        : `KVMSTRAP-AGENT: appliance-up reported to ${SERVER}/`;
    for (let i = 0; i < 60 && !readFileSync(log, "latin1").includes(marker); i++)
      await new Promise((r) => setTimeout(r, 1000));
    return { seconds, serial: readFileSync(log, "latin1"), log };
  } finally {
    await vm.stop();
  }
}

/** The states a node's timeline went through, in order, without repeats. */
const path_ = (n: NodeStatus) => n.timeline.map((t) => t.state).filter((s, i, a) => s !== a[i - 1]);

function expectTimeline(n: NodeStatus, states: string[]) {
  const seen = path_(n);
  // Every state of the chain, in this order (the server may add others between them).
  let at = 0;
  for (const s of seen) if (s === states[at]) at++;
  expect(seen, `timeline ${JSON.stringify(n.timeline)}`).toEqual(expect.arrayContaining(states));
  expect(at, `states in order: ${seen.join(" > ")}`).toBe(states.length);
  for (const t of n.timeline) expect(t.durationMs).toBeGreaterThanOrEqual(0);
  const line = n.timeline
    .filter((t) => t.state !== t.from)
    .map((t) => `${t.state} (after ${(t.durationMs / 1000).toFixed(1)} s in ${t.from})`)
    .join(" > ");
  console.log(`[test:pxe] ${n.mac}: ${line}`);
}

describe.skipIf(why)(`PXE chain into the real appliance${why ? ` (skipped: ${why})` : ""}`, () => {
  it(
    "SeaBIOS + QEMU's iPXE ROM: proxy DHCP, iPXE script, kernel, initrd, squashfs (sha256 checked), appliance-up, answer",
    async (ctx) => {
      if (missing) ctx.skip(missing);
      const m = await netbootManifest();
      const r = await bootToApplianceUp("seabios", SEABIOS_MAC);
      console.log(`[test:pxe] seabios: power-on to appliance-up in ${r.seconds.toFixed(0)} s`);
      // The initrd fetched the squashfs and checked it against the manifest's sha256.
      expect(r.serial).toContain(
        `KVMSTRAP-FETCH: fetched ${m.files["filesystem.squashfs"]?.size} bytes, sha256 ${m.files["filesystem.squashfs"]?.sha256} as kvmstrap.fetch-sha256= says`,
      );
      expect(r.serial).toContain(`KVMSTRAP-AGENT: appliance-up reported to ${SERVER}/`);
      // A known node with an answer: the agent fetched it from the server with its token (the
      // guest is gone by now; the event came before the kill or not at all).
      expect(r.serial).toMatch(
        /KVMSTRAP-AGENT: answer-fetched from http:\/\/10\.81\.0\.1:8080\/v1\/nodes\/\S+\/answer/,
      );
      // The address came from the site's DHCP; the proxy only named the boot file.
      expect(siteLog).toMatch(new RegExp(`DHCPACK\\(vs1\\) 10\\.81\\.0\\.1\\d\\d ${SEABIOS_MAC}`));
      const node = (await status()).find((n) => n.mac === SEABIOS_MAC);
      expect(node).toBeDefined();
      expectTimeline(node as NodeStatus, [
        "ipxe",
        "script",
        "kernel",
        "initrd",
        "rootfs",
        "appliance-up",
        "answer-fetched",
      ]);
    },
    GUEST_MS + 120_000,
  );

  it.skipIf(ovmfWhy)(
    `OVMF: EDK2's PXE, ipxe.efi over TFTP, iPXE script, kernel, initrd, squashfs, appliance-up${ovmfWhy ? ` (skipped: ${ovmfWhy})` : ""}`,
    async (ctx) => {
      if (missing) ctx.skip(missing);
      const r = await bootToApplianceUp("ovmf", OVMF_MAC);
      console.log(`[test:pxe] ovmf: power-on to appliance-up in ${r.seconds.toFixed(0)} s`);
      expect(r.serial).toMatch(
        /KVMSTRAP-FETCH: fetched \d+ bytes, sha256 [0-9a-f]{64} as kvmstrap.fetch-sha256= says/,
      );
      expect(r.serial).toContain(`KVMSTRAP-AGENT: appliance-up reported to ${SERVER}/`);
      expect(siteLog).toMatch(new RegExp(`DHCPACK\\(vs1\\) 10\\.81\\.0\\.1\\d\\d ${OVMF_MAC}`));
      const node = (await status()).find((n) => n.mac === OVMF_MAC);
      expect(node).toBeDefined();
      expectTimeline(node as NodeStatus, [
        "offered",
        "tftp",
        "ipxe",
        "script",
        "kernel",
        "initrd",
        "rootfs",
        "appliance-up",
      ]);
    },
    GUEST_MS + 120_000,
  );
});
