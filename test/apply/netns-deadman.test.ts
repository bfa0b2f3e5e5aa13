// The dead-man switch on the path that ships, on a real kernel: `kvmstrap plan --json` plans a bridge
// over the uplink for a machine whose network is ifupdown2 (a captured tree with that NIC), and
// `kvmstrap apply --plan` carries it out inside a network namespace with a private mount namespace
// (/etc/network, /run and /var/lib bound to temporary directories), so the rendered files and
// ifupdown2's own `ifreload -a` take vport's address over to br0 for real. Then the apply process is
// killed (SIGKILL), hung up on (SIGHUP), or confirmed: the watchdog it armed, a process of its own,
// puts the old network back on time or leaves the bridge in place and exits.
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SysfsFixture } from "../helpers/sysfs-fixture.js";
import { alive, awaitingConfirm, BIN, cli, latest, reached, runs, start, until } from "./deadman-helpers.js";
import { tempDir } from "./helpers.js";

const NS = `kvms-deadman-${process.pid}`;
const MAC = "02:00:00:77:00:02";
const CONFIRM_SECONDS = 4;
const INTERFACES = [
  "auto lo",
  "iface lo inet loopback",
  "",
  "auto vport",
  "iface vport inet static",
  "    address 10.77.0.2/24",
  "    gateway 10.77.0.1",
  "",
].join("\n");
const ANSWER = [
  "version: 1",
  "network:",
  "  stack: ifupdown2",
  "  bridges:",
  "    - name: br0",
  "      uplink: { name: vport }",
  "      addresses: [10.77.0.2/24]",
  "      gateway: 10.77.0.1",
  "",
].join("\n");

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;
const nsOk = has("ifreload") && has("unshare") && spawnSync("ip", ["netns", "add", NS]).status === 0;
const ip = (...args: string[]) => execFileSync("ip", ["-n", NS, ...args], { encoding: "utf8" });
const watchdogs: number[] = [];
const kept: string[] = [];
afterAll(() => {
  for (const dir of kept) rmSync(dir, { recursive: true, force: true });
  for (const pid of watchdogs) if (alive(pid)) process.kill(pid, "SIGKILL");
  if (nsOk) spawnSync("ip", ["netns", "del", NS]);
});

const links = () =>
  JSON.parse(ip("-j", "link", "show")) as { ifname: string; address: string; master?: string }[];
const addrsOf = (dev: string) =>
  (
    (JSON.parse(ip("-j", "address", "show", "dev", dev))[0]?.addr_info ?? []) as {
      family: string;
      local: string;
      prefixlen: number;
    }[]
  )
    .filter((a) => a.family === "inet")
    .map((a) => `${a.local}/${a.prefixlen}`);
const defaultDev = () => JSON.parse(ip("-j", "route", "show", "default"))[0]?.dev as string | undefined;
const hasBridge = () => links().some((l) => l.ifname === "br0");
/** The network as the machine had it before the apply: the address and default route on vport. */
const original = () => !hasBridge() && addrsOf("vport").join() === "10.77.0.2/24" && defaultDev() === "vport";
const bridged = () =>
  hasBridge() &&
  addrsOf("br0").join() === "10.77.0.2/24" &&
  addrsOf("vport").length === 0 &&
  defaultDev() === "br0";

let planFile = "";

/** The plan as the CLI makes it for a machine like the namespace: vport (MAC) under ifupdown2. */
async function planForNamespace(): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-deadman-plan-"));
  kept.push(dir);
  const fx = new SysfsFixture(path.join(dir, "root"));
  fx.pci({ address: "0000:00:03.0", vendor: "1af4", device: "1041", class: "020000", driver: "virtio-pci" });
  fx.netdev({ name: "vport", pci: "0000:00:03.0", mac: MAC, speed: 10000 });
  fx.routes([{ iface: "vport", gateway: "01004D0A" }]);
  fx.file("/etc/network/interfaces", INTERFACES);
  fx.dir("/usr/share/ifupdown2");
  fx.file("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vmx\n\n");
  fx.file("/proc/meminfo", "MemTotal:       8000000 kB\nMemAvailable:   6000000 kB\n");
  writeFileSync(path.join(dir, "answer.yaml"), ANSWER);
  const json = execFileSync(
    process.execPath,
    [BIN, "plan", path.join(dir, "answer.yaml"), "--root", fx.root, "--json"],
    { encoding: "utf8" },
  );
  const file = path.join(dir, "plan.json");
  writeFileSync(file, json);
  return file;
}

/** A fresh machine: vport (a veth) configured by ifupdown2 from its interfaces file. */
async function freshMachine(): Promise<{ dir: string; stateDir: string }> {
  spawnSync("ip", ["-n", NS, "link", "del", "br0"]);
  spawnSync("ip", ["-n", NS, "link", "del", "vport"]);
  ip("link", "add", "vport", "address", MAC, "type", "veth", "peer", "name", "vpeer");
  ip("link", "set", "vpeer", "up");
  const dir = await tempDir("kvmstrap-deadman-");
  mkdirSync(path.join(dir, "etc-network/interfaces.d"), { recursive: true });
  cpSync("/etc/network/ifupdown2", path.join(dir, "etc-network/ifupdown2"), { recursive: true });
  writeFileSync(path.join(dir, "etc-network/interfaces"), INTERFACES);
  mkdirSync(path.join(dir, "var-lib"));
  return { dir, stateDir: path.join(dir, "var-lib/kvmstrap") };
}

/**
 * `kvmstrap apply --plan` run as on the machine: in the namespace, /etc/network, /run and /var/lib
 * private. The machine's network is brought up first (ifreload -a) in the same mount namespace, so
 * ifupdown2 keeps its state for the reloads that follow, the watchdog's included.
 */
function applyInNamespace(dir: string) {
  const script = [
    `mount --bind ${dir}/etc-network /etc/network`,
    "mount -t tmpfs tmpfs /run",
    "mkdir /run/network",
    `mount --bind ${dir}/var-lib /var/lib`,
    "ifreload -a",
    `exec "${process.execPath}" "${BIN}" apply --plan "${planFile}" --yes --confirm-timeout ${CONFIRM_SECONDS}`,
  ].join(" && ");
  return start(["ip", "netns", "exec", NS, "unshare", "-m", "--propagation", "private", "sh", "-c", script]);
}

async function killDuringTheWindow(signal: NodeJS.Signals) {
  const { dir, stateDir } = await freshMachine();
  const apply = applyInNamespace(dir);
  const run = await awaitingConfirm(stateDir, apply);
  expect(bridged()).toBe(true);
  expect(links().find((l) => l.ifname === "br0")?.address).toBe(MAC);
  const watchdog = run.watchdog?.pid;
  expect(run.watchdog?.kind).toBe("process");
  expect(alive(watchdog)).toBe(true);
  watchdogs.push(watchdog as number);
  apply.child.kill(signal);
  expect((await apply.exited).signal).toBe(signal);
  const deadline = Date.parse(run.deadline as string);
  // Nothing is reverted before the deadline...
  await new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now() - 500)));
  expect(bridged()).toBe(true);
  // ...and the old network is back soon after it, by the watchdog alone.
  const after = await reached(stateDir, "reverted", 10_000);
  const late = Date.now() - deadline;
  expect(late).toBeLessThan(5_000);
  expect(original()).toBe(true);
  expect(after).toMatchObject({ runId: run.runId, phase: "reverted", revertedBy: "watchdog" });
  expect(after?.actions.filter((a) => a.status === "reverted").map((a) => a.id)).toContain(
    "network.file./etc/network/interfaces.d/kvmstrap",
  );
  await until("the watchdog to exit", () => !alive(watchdog), 5_000);
  const log = readFileSync(path.join(stateDir, `log/watchdog-${run.runId}.log`), "utf8");
  expect(log).toContain("reverted by the watchdog; the apply process is gone");
  return { dir, stateDir, run, late };
}

describe.skipIf(!nsOk)("the dead-man switch with ifupdown2 on a real bridge in a network namespace", () => {
  beforeAll(async () => {
    planFile = await planForNamespace();
    const plan = JSON.parse(readFileSync(planFile, "utf8")) as { actions: { id: string; argv?: string[] }[] };
    // The shipped path: the rendered ifupdown2 files and ifupdown2's own reload, nothing test-made.
    expect(plan.actions.find((a) => a.id === "network.reload")?.argv).toEqual(["ifreload", "-a"]);
  }, 60_000);

  it("kill -9 during the confirm window: the watchdog reverts on time; a re-run applies again and is confirmed", async () => {
    const { dir, stateDir, run } = await killDuringTheWindow("SIGKILL");
    // The README's promise: running apply again retries the run (a new run, not refused).
    const again = applyInNamespace(dir);
    const second = await until("a second run awaiting confirmation", () => {
      const r = latest(stateDir);
      return r && r.runId !== run.runId && r.phase === "awaiting-confirm" ? r : undefined;
    });
    expect(second.supersedes).toBe(run.runId);
    if (second.watchdog?.pid) watchdogs.push(second.watchdog.pid);
    expect(bridged()).toBe(true);
    const confirm = cli(["confirm", "--state-dir", stateDir]);
    expect((await confirm.exited).code).toBe(0);
    expect((await again.exited).code).toBe(0);
    expect(latest(stateDir)?.phase).toBe("done");
    expect(bridged()).toBe(true);
  }, 90_000);

  it("SIGHUP (the SSH session drops) during the confirm window: the watchdog reverts on time", async () => {
    await killDuringTheWindow("SIGHUP");
  }, 60_000);

  it("confirmed in time: the bridge stays with the port's MAC and address, and the watchdog exits", async () => {
    const { dir, stateDir } = await freshMachine();
    const apply = applyInNamespace(dir);
    const run = await awaitingConfirm(stateDir, apply);
    const watchdog = run.watchdog?.pid;
    if (watchdog) watchdogs.push(watchdog);
    expect(alive(watchdog)).toBe(true);
    const confirm = cli(["confirm", "--state-dir", stateDir]);
    expect((await confirm.exited).code).toBe(0);
    expect((await apply.exited).code).toBe(0);
    await until("the watchdog to exit", () => !alive(watchdog), 5_000);
    // Past the deadline nothing is reverted.
    await new Promise((r) =>
      setTimeout(r, Math.max(0, Date.parse(run.deadline as string) - Date.now() + 1000)),
    );
    expect(bridged()).toBe(true);
    expect(links().find((l) => l.ifname === "br0")?.address).toBe(MAC);
    expect(links().find((l) => l.ifname === "vport")?.master).toBe("br0");
    expect(runs(stateDir).map((r) => r.phase)).toEqual(["done"]);
  }, 60_000);
});
if (!nsOk) it.skip("dead-man switch: `ip netns add`, ifreload or unshare is not available here", () => {});
