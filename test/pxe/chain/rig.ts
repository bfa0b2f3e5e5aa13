// Shared by the boot-chain tests that stop once the chain is proven (full DHCP, UEFI HTTP Boot): a
// QEMU guest on real firmware, the shipped `kvmstrap serve` in a network namespace with its JSON
// event stream kept as a test artifact, its status, and the checks on a node's timeline.
import { type ChildProcess, spawnSync } from "node:child_process";
import { copyFileSync, createWriteStream, existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { expect } from "vitest";
import { has, Lines, type Netns, netnsUnavailable, tempDir } from "../dhcp4/netns.js";
import { LOG_DIR, type NetbootManifest } from "./netboot.js";

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";
export const IPXE_EFI = "/usr/lib/ipxe/ipxe.efi";
export const BIN = path.resolve("bin/kvmstrap.js");
/** Power-on until the kernel and initrd are fetched, per guest (TCG on a busy 2-core machine). */
export const FETCH_MS = Number(process.env.KVMSTRAP_PXE_FETCH_TIMEOUT ?? 300) * 1000;

/** Why no chain test can run here, or undefined. */
export function chainUnavailable(): string | undefined {
  return (
    netnsUnavailable() ??
    (has("qemu-system-x86_64") ? undefined : "qemu-system-x86_64 missing") ??
    (existsSync(path.resolve("dist/cli/serve-command.js")) ? undefined : "dist/ not built (npm run build)")
  );
}

/** Why the OVMF guests cannot run here, or undefined. */
export function ovmfUnavailable(): string | undefined {
  if (!existsSync(OVMF_CODE) || !existsSync(OVMF_VARS)) return "package ovmf missing";
  if (!existsSync(IPXE_EFI)) return "package ipxe missing (ipxe.efi)";
  return undefined;
}

/**
 * - seabios: SeaBIOS runs QEMU's iPXE ROM for virtio-net (iPXE is the PXE client itself);
 * - ovmf: EDK2's own virtio-net driver and PXE client (romfile= empty keeps iPXE's EFI ROM out);
 * - ovmf-http: EDK2's UEFI HTTP Boot client. OVMF reads `opt/org.tianocore/IPv4PXESupport` and
 *   `IPv6PXESupport` from fw_cfg (OvmfPkg/Library/PxeBcPcdProducerLib, in Debian 12's 2022.11):
 *   with both off the PXE driver makes no boot options, so the network boot options `-boot n`
 *   leaves are the "UEFI HTTPv4/HTTPv6" ones, and HTTPv4 comes first.
 */
export type Firmware = "seabios" | "ovmf" | "ovmf-http";

export interface Guest {
  readonly log: string;
  stderr(): string;
  /** Resolves with the exit code if QEMU ends by itself (it should not before it is stopped). */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * A QEMU guest on `tap` that boots the network. With `disk` (a raw image) it also has a disk, second
 * in the boot order after the NIC (OVMF connects only the devices in the boot order).
 */
export function startGuest(
  ns: Netns,
  firmware: Firmware,
  mac: string,
  log: string,
  tap = "tap0",
  disk?: string,
): Guest {
  const order = disk ? ",bootindex=1" : "";
  const nic = `virtio-net-pci,netdev=n0,mac=${mac}${firmware === "seabios" ? "" : ",romfile="}${order}`;
  const drives = disk
    ? ["-drive", `file=${disk},format=raw,if=none,id=d0`, "-device", "virtio-blk-pci,drive=d0,bootindex=2"]
    : ["-boot", "n"];
  const fw: string[] = [];
  if (firmware !== "seabios") {
    const vars = path.join(tempDir("chain-ovmf"), "vars.fd");
    copyFileSync(OVMF_VARS, vars);
    fw.push("-M", "q35", "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`);
    fw.push("-drive", `if=pflash,format=raw,file=${vars}`);
    if (firmware === "ovmf-http")
      for (const v of ["IPv4PXESupport", "IPv6PXESupport"])
        fw.push("-fw_cfg", `name=opt/org.tianocore/${v},string=n`);
  }
  // 1 GiB: iPXE holds the 41 MiB initrd and the kernel; nothing past them is booted here.
  const child = ns.spawn("qemu-system-x86_64", [
    ...["-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-monitor", "none"],
    ...["-serial", `file:${log}`, "-no-reboot"],
    ...drives,
    ...fw,
    ...["-netdev", `tap,id=n0,ifname=${tap},script=no,downscript=no`, "-device", nic],
  ]);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return {
    log,
    stderr: () => stderr,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

export interface Serve {
  lines: Lines;
  child: ChildProcess;
  /** SIGTERM and wait for the exit (the server saves its leases and state before it exits). */
  stop(): Promise<number | null>;
}

/** The shipped CLI, `kvmstrap serve ARGS --json`, its events copied to LOG_DIR/<events>. */
export async function startServe(ns: Netns, args: string[], events: string): Promise<Serve> {
  const child = ns.spawn("node", [BIN, "serve", ...args, "--json"]);
  const out = createWriteStream(path.join(LOG_DIR, events), { flags: "a" });
  child.stdout?.on("data", (d: Buffer) => out.write(d));
  const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const lines = new Lines(child);
  const first = await lines.wait(
    (o) => o.type === "listening" || o.type === "fatal",
    30_000,
    "kvmstrap serve listening",
  );
  expect(first.type, lines.stderr).toBe("listening");
  return {
    lines,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const code = await exit;
      out.end();
      return code;
    },
  };
}

export type TimelineEntry = {
  state: string;
  from: string;
  durationMs: number;
  input: string;
  detail?: string;
  time: string;
};
export type NodeStatus = { mac: string; state: string; elapsedMs: number; timeline: TimelineEntry[] };

/** `kvmstrap serve status --json`, as an operator runs it, for one node. */
export function nodeStatus(ns: Netns, server: string, mac: string): NodeStatus {
  const r = spawnSync(
    "ip",
    ["netns", "exec", ns.name, "node", BIN, "serve", "status", "--server", server, "--json"],
    {
      encoding: "utf8",
    },
  );
  expect(r.status, r.stderr).toBe(0);
  const node = (JSON.parse(r.stdout) as { nodes: NodeStatus[] }).nodes.find((n) => n.mac === mac);
  expect(node, `no node ${mac} in ${r.stdout.slice(0, 2000)}`).toBeDefined();
  return node as NodeStatus;
}

/** The states a timeline went through, in order, without repeats. */
export const statesOf = (n: NodeStatus) => n.timeline.map((t) => t.state).filter((s, i, a) => s !== a[i - 1]);

/**
 * The node went through exactly `states`, in this order, each entry with a duration; prints the
 * chain with the time spent in each state. Exact: a state the chain should not have (a stall, a
 * second "offered" after iPXE) fails the test.
 */
export function expectTimeline(n: NodeStatus, states: string[]): void {
  expect(statesOf(n), `timeline ${JSON.stringify(n.timeline)}`).toEqual(states);
  for (const t of n.timeline) expect(t.durationMs).toBeGreaterThanOrEqual(0);
  const line = n.timeline
    .filter((t) => t.state !== t.from)
    .map((t) => `${t.state} (after ${(t.durationMs / 1000).toFixed(1)} s in ${t.from})`)
    .join(" > ");
  console.log(`[test:pxe] ${n.mac}: ${line}`);
}

/** The first timeline entry that entered `state`. */
export const entered = (n: NodeStatus, state: string) =>
  n.timeline.find((t) => t.state === state && t.from !== state);

/**
 * Powers a guest on and waits until the server has sent the node its kernel and initrd in full
 * (the `http-done` of initrd.img: the node's own script asked for both), or the node stalls or
 * fails, or QEMU dies; then kills the guest. Booting on into the appliance (and installing it) is
 * the fleet tier's rack rollout's part (test/fleet/rollout/rack.fleet.test.ts); here the chain up to
 * the kernel is what differs.
 */
export async function bootUntilFetched(
  ns: Netns,
  serve: Serve,
  firmware: Firmware,
  mac: string,
  log: string,
): Promise<{ seconds: number; serial: string }> {
  const vm = startGuest(ns, firmware, mac, log);
  const t = Date.now();
  try {
    const done = serve.lines.wait(
      (o) =>
        o.mac === mac &&
        ((o.input === "http-done" && String(o.detail).startsWith("initrd.img:")) ||
          (o.type === "node-state" && ["stalled", "failed"].includes(String(o.state)))),
      FETCH_MS,
      `${firmware}: kernel and initrd sent to ${mac} (serial log ${log})`,
    );
    const end = await Promise.race([
      done,
      vm.exited.then((code) => ({ type: "qemu-exit", code }) as Record<string, unknown>),
    ]);
    const seconds = (Date.now() - t) / 1000;
    const serial = existsSync(log) ? readFileSync(log, "latin1") : "";
    expect(end.input, `${JSON.stringify(end)}\nserial tail:\n${serial.slice(-3000)}\n${vm.stderr()}`).toBe(
      "http-done",
    );
    console.log(
      `[test:pxe] ${firmware} ${mac}: power-on to kernel and initrd fetched in ${seconds.toFixed(0)} s`,
    );
    return { seconds, serial };
  } finally {
    await vm.stop();
  }
}

/** The kernel and initrd were sent to this node in full: the manifest's sizes, from its own script. */
export function expectFetched(s: Serve, mac: string, manifest: NetbootManifest): void {
  for (const file of ["vmlinuz", "initrd.img"]) {
    const done = s.lines.seen.find(
      (o) => o.mac === mac && o.input === "http-done" && String(o.detail).startsWith(`${file}:`),
    );
    expect(done, `${file} sent to ${mac}`).toMatchObject({ bytes: manifest.files[file]?.size });
  }
}
