// The virsh parsers on output captured from a real libvirtd (test/vm/fixtures/virsh, recaptured by
// scripts/capture-virsh-fixtures.mjs; INDEX.md says which command made each file), and the virsh
// adapter replaying those captures through its CommandRunner, so what ships reads what virsh prints.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { CommandRunner } from "../../src/host/commands.js";
import { LibvirtError } from "../../src/vm/libvirt.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import {
  agentReturn,
  parseDefinedName,
  parseDhcpLeases,
  parseDomainList,
  parseDomIfAddr,
  parseExecStatus,
  parseNetList,
  parseVersion,
  parseVolList,
  tableRows,
} from "../../src/vm/virsh-parse.js";

const DIR = path.join(import.meta.dirname, "fixtures/virsh");
const captured = (f: string) => readFileSync(path.join(DIR, f), "utf8");
// The names and MAC the capture script gave its objects (test/vm/capture-virsh.ts, CAPTURED).
const GUEST = "kvst-capture";
const MAC = "52:54:00:5e:a1:01";
const TEST_SUBNET = /^192\.168\.150\.(\d+)$/;

describe("virsh parsers on captured output", () => {
  it("version: library and hypervisor", () => {
    const v = parseVersion(captured("version.txt"));
    expect(v.library).toMatch(/^\d+\.\d+\.\d+$/);
    expect(v.hypervisor?.name).toBe("QEMU");
    expect(v.hypervisor?.version).toMatch(/^\d+\.\d+/);
  });

  it("list --all: a running and a shut-off domain, the state with its inner space kept", () => {
    expect(parseDomainList(captured("list-all.txt"))).toEqual([
      { name: GUEST, state: "running" },
      { name: "kvst-stopped", state: "shut off" },
    ]);
  });

  it("domstate is one word or two, trimmed", () => {
    expect(captured("domstate-running.txt").trim()).toBe("running");
    expect(captured("domstate-shut-off.txt").trim()).toBe("shut off");
  });

  it("domifaddr --source lease: the guest's MAC and a v4 address on the test subnet", () => {
    const [nic, ...rest] = parseDomIfAddr(captured("domifaddr-lease.txt"));
    expect(rest).toEqual([]);
    expect(nic?.mac).toBe(MAC);
    expect(nic?.iface).toMatch(/^vnet\d+$/);
    expect(nic?.addrs).toHaveLength(1);
    expect(nic?.addrs[0]?.family).toBe("ipv4");
    expect(nic?.addrs[0]?.address).toMatch(TEST_SUBNET);
    expect(nic?.addrs[0]?.prefix).toBe(24);
    expect(parseDomIfAddr(captured("domifaddr-lease-none.txt"))).toEqual([]);
  });

  it("domifaddr --source agent: '-' rows continue the interface above; lo and v6 kept", () => {
    const ifaces = parseDomIfAddr(captured("domifaddr-agent.txt"));
    expect(ifaces.map((i) => i.iface)).toEqual(["lo", expect.stringMatching(/^(en|eth)/)]);
    expect(ifaces[0]?.addrs.map((a) => a.family)).toEqual(["ipv4", "ipv6"]);
    expect(ifaces[1]?.mac).toBe(MAC);
    expect(ifaces[1]?.addrs.map((a) => a.family).sort()).toEqual(["ipv4", "ipv6"]);
    const lease = parseDomIfAddr(captured("domifaddr-lease.txt"))[0]?.addrs[0]?.address;
    expect(ifaces[1]?.addrs.find((a) => a.family === "ipv4")?.address).toBe(lease);
  });

  it("net-dhcp-leases: expiry with its inner space, hostname from user-data, a DUID client id", () => {
    const leases = parseDhcpLeases(captured("net-dhcp-leases.txt"));
    expect(leases).toHaveLength(1);
    const l = leases[0];
    expect(l?.expiry).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(l?.mac).toBe(MAC);
    expect(l?.family).toBe("ipv4");
    expect(l?.address).toMatch(TEST_SUBNET);
    expect(l?.hostname).toBe(GUEST);
    expect(l?.clientId).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2})+$/);
  });

  it("net-list --all, vol-list, pool-list --all", () => {
    expect(parseNetList(captured("net-list-all.txt"))).toEqual([
      { name: "kvmstrap-test", active: true, autostart: false, persistent: true },
    ]);
    const vols = parseVolList(captured("vol-list.txt"));
    expect(vols).toHaveLength(1);
    expect(vols[0]?.name).toBe("kvst-vol.qcow2");
    expect(vols[0]?.path).toMatch(/\/pool\/kvst-vol\.qcow2$/);
    expect(captured("vol-path.txt").trim()).toBe(vols[0]?.path);
    expect(tableRows(captured("pool-list-all.txt"))).toEqual([["kvst-pool", "active", "no"]]);
  });

  it("define / net-define / pool-define name what they defined", () => {
    expect(parseDefinedName(captured("define-domain.txt"), "Domain")).toBe(GUEST);
    expect(parseDefinedName(captured("net-define.txt"), "Network")).toBe("kvmstrap-test");
    expect(parseDefinedName(captured("pool-define.txt"), "Pool")).toBe("kvst-pool");
  });

  it("guest agent replies: guest-exec's pid, guest-exec-status decoded, the host name", () => {
    expect(agentReturn(captured("agent-guest-exec.txt"))).toEqual({ pid: expect.any(Number) });
    expect(parseExecStatus(agentReturn(captured("agent-guest-exec-status.txt")))).toEqual({
      exitCode: 0,
      signal: null,
      stdout: "captured\n",
      stderr: "",
    });
    expect(agentReturn(captured("agent-host-name.txt"))).toEqual({ "host-name": GUEST });
  });
});

/** Answers each virsh call with the capture of that command (exit 1 with stderr for err-*). */
function replay(): CommandRunner {
  const answers: Record<string, string> = {
    "list --all": "list-all.txt",
    [`domstate ${GUEST}`]: "domstate-running.txt",
    [`domifaddr ${GUEST} --source lease`]: "domifaddr-lease.txt",
    "net-dhcp-leases kvmstrap-test": "net-dhcp-leases.txt",
    "vol-list kvst-pool": "vol-list.txt",
    "domuuid kvst-missing": "err-no-domain-uuid.txt",
    "pool-uuid kvst-missing": "err-no-pool.txt",
    "domstate kvst-missing": "err-no-domain.txt",
    "start kvst-vhost": "err-vhost-net.txt",
  };
  return {
    async which() {
      return "/usr/bin/virsh";
    },
    async run(_file, args) {
      const file = answers[args.slice(2).join(" ")];
      if (!file) throw new Error(`no capture for virsh ${args.join(" ")}`);
      const failed = file.startsWith("err-");
      return {
        exitCode: failed ? 1 : 0,
        stdout: failed ? "" : captured(file),
        stderr: failed ? captured(file) : "",
        timedOut: false,
      };
    },
  };
}

describe("VirshLibvirt replaying captured virsh output", () => {
  const lv = new VirshLibvirt("qemu:///system", { runner: replay() });

  it("reads lists, states and addresses", async () => {
    expect((await lv.listDomains()).map((d) => d.state)).toEqual(["running", "shut off"]);
    expect(await lv.domainState(GUEST)).toBe("running");
    expect((await lv.ifAddresses(GUEST, "lease"))[0]?.mac).toBe(MAC);
    expect((await lv.netDhcpLeases("kvmstrap-test"))[0]?.hostname).toBe(GUEST);
    expect(await lv.volList("kvst-pool")).toHaveLength(1);
  });

  it("turns 'not found' into false for the exists probes, and typed errors otherwise", async () => {
    expect(await lv.domainExists("kvst-missing")).toBe(false);
    expect(await lv.poolExists("kvst-missing")).toBe(false);
    const e = await lv.domainState("kvst-missing").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as LibvirtError).code).toBe("no-domain");
    const v = (await lv.start("kvst-vhost").catch((x: unknown) => x)) as LibvirtError;
    expect(v.code).toBe("host-lacks");
    expect(v.message).toBe(
      "Failed to start domain 'kvst-vhost': vhost-net was requested for an interface, but is unavailable",
    );
  });
});
