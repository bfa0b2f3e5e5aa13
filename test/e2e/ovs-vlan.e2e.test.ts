// Networks end to end on the test libvirtd: `kvmstrap apply` of an answer file (the built CLI, with
// --connect) defines a libvirt NAT and an isolated network through the libvirt port and makes an
// Open vSwitch bridge with ovs-vsctl, under the confirm-or-revert switch (confirmed with `kvmstrap
// confirm`). Open vSwitch runs in the daemon's network namespace without its kernel module
// (datapath_type=netdev): ovsdb-server and ovs-vswitchd are this test's processes with their own db
// and run dirs. The guest (the Debian guest, deployed by deployVm from the spec `vm deploy` builds
// for the NIC { ovs, vlan: 10 }) gets its access port from libvirt; two peers sit in network
// namespaces on access ports of VLAN 10 and VLAN 20, in one IPv4 subnet. The guest takes its address
// from dnsmasq on the VLAN-10 peer, pings that peer and not the VLAN-20 one; its second NIC, a trunk
// of VLAN 20, reaches the VLAN-20 peer through a tagged sub-interface and not the VLAN-10 one through
// another. `kvmstrap undo` then
// removes the bridge and both libvirt networks.
import { type ChildProcess, spawn } from "node:child_process";
import { openSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { ovsPorts } from "../../src/host/ovs-vsctl.js";
import { deployVm } from "../../src/vm/deploy.js";
import { vmSpecFromEntry } from "../../src/vm/from-answer.js";
import type { Libvirt } from "../../src/vm/libvirt.js";
import { deleteVm } from "../../src/vm/manage.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import { vmMac } from "../../src/vm/vm-spec.js";
import { sshPublicKey } from "./guest-fixture.js";
import { ensureGuestImage, type GuestImage } from "./guest-image.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const BIN = path.resolve(import.meta.dirname, "../../bin/kvmstrap.js");
const sfx = (process.pid % 0xffff).toString(16);
const BRIDGE = `kvo${sfx}`;
const VM = `kvst-ovs-${sfx}`;
const NAT = `kvs-nat-${sfx}`;
const ISO = `kvs-iso-${sfx}`;
const PEERS = [
  { vlan: 10, ns: `kvs-p10-${sfx}`, port: `kv${sfx}p10`, ip: "10.99.0.2" },
  { vlan: 20, ns: `kvs-p20-${sfx}`, port: `kv${sfx}p20`, ip: "10.99.0.3" },
] as const;

let daemon: TestLibvirtd | undefined;
let lv: Libvirt;
let image: GuestImage;
let report: HostReport;
let work = "";
let ovsHostDir = ""; // ROOT/run/ovs on the host = /run/libvirt/ovs inside the namespace
const children: ChildProcess[] = [];
let env: Record<string, string> = {};
let guestOk = false;
const t0 = Date.now();
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** A long-running program inside the daemon's namespaces, owned by this test. */
function nsSpawn(args: string[], log: string): ChildProcess {
  const out = openSync(log, "a");
  const c = spawn(
    "nsenter",
    ["-t", String(daemon?.pid), "-n", "-m", "-p", "env", "OVS_RUNDIR=/run/libvirt/ovs", ...args],
    { stdio: ["ignore", out, out] },
  );
  children.push(c);
  return c;
}

const ns = (file: string, ...args: string[]) => (daemon as TestLibvirtd).nsExec(file, args);
const kvmstrap = (args: string[]) => execa("node", [BIN, ...args], { env, reject: false, timeout: 120_000 });

async function until<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | null | undefined | false>,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms / 1000} s`);
    await sleep(500);
  }
}

async function startOvs(): Promise<void> {
  ovsHostDir = path.join(daemon?.dirs.run as string, "ovs");
  await mkdir(ovsHostDir, { recursive: true });
  await execa("ovsdb-tool", [
    "create",
    path.join(ovsHostDir, "conf.db"),
    "/usr/share/openvswitch/vswitch.ovsschema",
  ]);
  // libvirtd's own ovs-vsctl looks in /run/openvswitch (private to the namespace); kvmstrap's, on
  // the host, finds the same server through OVS_RUNDIR.
  await ns("mkdir", "-p", "/run/openvswitch");
  nsSpawn(
    [
      "ovsdb-server",
      "/run/libvirt/ovs/conf.db",
      "--remote=punix:/run/libvirt/ovs/db.sock",
      "--remote=punix:/run/openvswitch/db.sock",
      "--pidfile=/run/libvirt/ovs/ovsdb-server.pid",
      "--unixctl=/run/libvirt/ovs/ovsdb-server.ctl",
      "--log-file=/run/libvirt/ovs/ovsdb-server.log",
    ],
    path.join(ovsHostDir, "ovsdb-server.out"),
  );
  // This process's own ovs-vsctl calls (ovsPorts through the runner) find it the same way.
  process.env.OVS_RUNDIR = ovsHostDir;
  env = { ...process.env, LC_ALL: "C" } as Record<string, string>;
  await until("ovsdb-server", 10_000, async () => {
    const r = await execa("ovs-vsctl", ["--timeout=2", "--no-wait", "init"], { env, reject: false });
    return r.exitCode === 0;
  });
  nsSpawn(
    [
      "ovs-vswitchd",
      "unix:/run/libvirt/ovs/db.sock",
      "--pidfile=/run/libvirt/ovs/ovs-vswitchd.pid",
      "--unixctl=/run/libvirt/ovs/ovs-vswitchd.ctl",
      "--log-file=/run/libvirt/ovs/ovs-vswitchd.log",
    ],
    path.join(ovsHostDir, "ovs-vswitchd.out"),
  );
  await until("ovs-vswitchd", 10_000, async () => {
    const r = await execa("ovs-appctl", ["-t", path.join(ovsHostDir, "ovs-vswitchd.ctl"), "version"], {
      env,
      reject: false,
    });
    return r.exitCode === 0;
  });
}

/** Peers: a veth into a namespace of its own, the other end an OVS access port on its VLAN. */
async function addPeers(): Promise<void> {
  for (const p of PEERS) {
    await ns("ip", "netns", "add", p.ns);
    await ns("ip", "link", "add", p.port, "type", "veth", "peer", "name", "eth0", "netns", p.ns);
    await ns("ip", "-n", p.ns, "addr", "add", `${p.ip}/24`, "dev", "eth0");
    await ns("ip", "-n", p.ns, "link", "set", "eth0", "up");
    await ns("ip", "-n", p.ns, "link", "set", "lo", "up");
    // A veth leaves UDP checksums to offload, which the user-space datapath never completes: without
    // this the guest drops dnsmasq's offers (measured: no DHCPOFFER through a netdev bridge).
    await ns("ip", "netns", "exec", p.ns, "ethtool", "-K", "eth0", "tx", "off");
    await ns("ip", "link", "set", p.port, "up");
    await execa("ovs-vsctl", ["--timeout=10", "add-port", BRIDGE, p.port, `tag=${p.vlan}`], { env });
  }
  // DHCP for the guest, from the VLAN-10 peer only: an address is proof of VLAN 10 already.
  nsSpawn(
    [
      "ip",
      "netns",
      "exec",
      PEERS[0].ns,
      "dnsmasq",
      "--no-daemon",
      "--conf-file=/dev/null",
      "--port=0",
      "--interface=eth0",
      "--bind-interfaces",
      "--dhcp-range=10.99.0.50,10.99.0.60,255.255.255.0,1h",
      "--dhcp-leasefile=/run/libvirt/ovs/peer10.leases",
      "--pid-file=/run/libvirt/ovs/dnsmasq.pid",
    ],
    path.join(ovsHostDir, "dnsmasq.out"),
  );
}

const ANSWER = () => `version: 1
network:
  libvirt:
    - { name: ${NAT}, mode: nat, bridge: kvn${sfx}, address: 192.168.171.1/24, dhcpRange: [192.168.171.10, 192.168.171.50] }
    - { name: ${ISO}, mode: isolated, bridge: kvi${sfx}, address: 192.168.172.1/24 }
  ovs:
    - { name: ${BRIDGE}, datapath: netdev }
`;

// Sends three ICMP echoes from the guest (no ping binary in the image; python3 is cloud-init's) and
// prints how many were answered.
const PING_PY = `
import socket, struct, sys, time
def ck(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
dst = sys.argv[1]; sk = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); ok = 0
if len(sys.argv) > 2: sk.setsockopt(socket.SOL_SOCKET, 25, sys.argv[2].encode())  # SO_BINDTODEVICE
for seq in range(3):
    body = struct.pack("!HH", 0x4b56, seq) + b"kvmstrap"
    pkt = struct.pack("!BBH", 8, 0, ck(struct.pack("!BBH", 8, 0, 0) + body)) + body
    sk.sendto(pkt, (dst, 0)); end = time.time() + 1.5
    while time.time() < end:
        sk.settimeout(max(0.01, end - time.time()))
        try: d, a = sk.recvfrom(1500)
        except socket.timeout: break
        h = (d[0] & 15) * 4
        if a[0] == dst and d[h] == 0 and d[h + 4:h + 8] == body[:4]: ok += 1; break
print(ok)
`;

beforeAll(async () => {
  image = await ensureGuestImage();
  report = await detectHost({ fs: new RootedHostFs("/") }); // no runner: the probe is not run (TCG)
  daemon = await startTestLibvirtd();
  lv = new VirshLibvirt(daemon.uri);
  work = await mkdtemp(path.join("/var/tmp", `kvmstrap-e2e-ovs-${process.pid}-`));
  await startOvs();
  console.log(`[e2e ovs] libvirtd and Open vSwitch (netdev) up in ${secs(Date.now() - t0)}`);
}, 300_000);

afterAll(async () => {
  if (daemon) {
    const log = await readFile(path.join(work, VM, "serial.log"), "utf8").catch(() => "");
    if (!guestOk) {
      const dnsmasq = await readFile(path.join(ovsHostDir, "dnsmasq.out"), "utf8").catch(() => "");
      if (dnsmasq) console.log(`[e2e ovs] dnsmasq on the VLAN-10 peer:\n${dnsmasq.slice(-2000)}`);
    }
    if (log && !guestOk)
      console.log(`[e2e ovs] serial (last 30 lines):\n${log.split("\n").slice(-30).join("\n")}`);
    await lv.destroy(VM).catch(() => {});
    await lv.undefineDomain(VM).catch(() => {});
    for (const pidfile of ["dnsmasq.pid", "ovs-vswitchd.pid", "ovsdb-server.pid"])
      await ns("sh", "-c", `kill $(cat /run/libvirt/ovs/${pidfile}) 2>/dev/null; true`).catch(() => {});
    await daemon.stop(); // the namespace's end takes the peers' namespaces and anything left with it
  }
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  if (work) await rm(work, { recursive: true, force: true });
  console.log(`[e2e ovs] total ${secs(Date.now() - t0)}`);
});

describe("networks from the answer file on the test libvirtd and a user-space Open vSwitch", () => {
  const stateDir = () => path.join(work, "state");
  const answerFile = () => path.join(work, "answer.yaml");

  it("kvmstrap plan shows the libvirt networks and the OVS bridge (netdev), the bridge under the confirm switch", async () => {
    await writeFile(answerFile(), ANSWER());
    const r = await kvmstrap(["plan", answerFile()]);
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`libvirt NAT network ${NAT} on kvn${sfx} (192.168.171.1/24)`);
    expect(r.stdout).toContain(`libvirt isolated network ${ISO} on kvi${sfx} (192.168.172.1/24)`);
    expect(r.stdout).toMatch(
      new RegExp(`Open vSwitch bridge ${BRIDGE} \\(datapath netdev.*\\[network: confirm`),
    );
    expect(r.stdout).toContain(`add-br ${BRIDGE} -- set bridge ${BRIDGE} datapath_type=netdev`);
  });

  it("kvmstrap apply makes them, waits for kvmstrap confirm, and keeps them", async () => {
    const t = Date.now();
    const apply = execa(
      "node",
      [
        BIN,
        "apply",
        answerFile(),
        "--yes",
        "--connect",
        daemon?.uri as string,
        "--state-dir",
        stateDir(),
        "--events",
        "-",
        "--confirm-timeout",
        "120",
      ],
      { env, reject: false, timeout: 150_000 },
    );
    let confirmed = false;
    apply.stdout?.on("data", (chunk: Buffer) => {
      if (!confirmed && chunk.toString().includes('"confirm-required"')) {
        confirmed = true;
        void kvmstrap(["confirm", "--state-dir", stateDir()]);
      }
    });
    const r = await apply;
    console.log(`[e2e ovs] apply with its confirmation ${secs(Date.now() - t)}`);
    expect(confirmed).toBe(true);
    expect(r.exitCode, r.stderr).toBe(0);
    const nets = await lv.netList();
    expect(nets.find((n) => n.name === NAT)).toMatchObject({ active: true, autostart: true });
    expect(nets.find((n) => n.name === ISO)).toMatchObject({ active: true, autostart: true });
    expect(await lv.netXml(NAT)).toContain("<forward mode='nat'");
    expect(await lv.netXml(ISO)).not.toContain("<forward");
    const dp = await execa("ovs-vsctl", ["get", "bridge", BRIDGE, "datapath_type"], { env });
    expect(dp.stdout.trim()).toBe("netdev");
    // A second apply finds everything in place.
    const again = await kvmstrap([
      "apply",
      answerFile(),
      "--yes",
      "--connect",
      daemon?.uri as string,
      "--state-dir",
      stateDir(),
    ]);
    expect(again.exitCode, again.stderr).toBe(0);
  }, 200_000);

  it("a guest on VLAN 10 reaches the VLAN-10 peer and not the VLAN-20 one in the same subnet; its trunk of VLAN 20 reaches only the VLAN-20 one", async () => {
    await addPeers();
    const built = vmSpecFromEntry(
      {
        name: VM,
        image: image.qcow2,
        vcpus: 1,
        memoryMiB: 768,
        diskGiB: 3,
        user: { name: image.user, sshKeys: [sshPublicKey(`e2e@${VM}`)] },
        nics: [
          { ovs: BRIDGE, vlan: 10 },
          { ovs: BRIDGE, trunk: [20] },
        ],
      },
      report,
    );
    if (!built.spec) throw new Error(JSON.stringify(built.errors));
    const spec = {
      ...built.spec,
      kernel: { path: image.kernel, initrd: image.initrd, cmdline: image.append },
    };
    const t = Date.now();
    await deployVm(spec, { libvirt: lv, report, dir: work });
    const xml = await lv.domainXml(VM);
    expect(xml).toMatch(/<virtualport type=["']openvswitch["']/);
    expect(xml).toMatch(/<tag id=["']10["']\/>/);
    expect(xml).toMatch(/<vlan trunk=["']yes["']>\s*<tag id=["']20["']\/>\s*<\/vlan>/);
    // libvirt made both ports: the guest's taps on the bridge, one with tag 10, one trunking 20.
    const ports = await ovsPorts(new ExecaRunner(), BRIDGE).catch(() => []);
    const guestPorts = ports.filter((p) => !PEERS.some((x) => x.port === p.name));
    expect(guestPorts.map((p) => ({ tag: p.tag, trunks: p.trunks }))).toEqual(
      expect.arrayContaining([
        { tag: 10, trunks: [] },
        { tag: null, trunks: [20] },
      ]),
    );

    await until("the guest agent", 240_000, () => lv.agentPing(VM));
    const agentAt = Date.now() - t;
    const addr = await until("a DHCP address from the VLAN-10 peer", 120_000, async () => {
      const r = await lv.agentExec(VM, "/bin/hostname", ["-I"]);
      return /\b10\.99\.0\.(5\d|60)\b/.exec(r.stdout)?.[0];
    });
    const addressAt = Date.now() - t;
    const ping = async (ip: string, dev?: string) =>
      Number(
        (
          await lv.agentExec(VM, "/usr/bin/python3", ["-c", PING_PY, ip, ...(dev ? [dev] : [])], {
            timeoutMs: 30_000,
          })
        ).stdout.trim(),
      );
    const same = await ping(PEERS[0].ip);
    const other = await ping(PEERS[1].ip);
    console.log(
      `[e2e ovs] guest: agent at +${secs(agentAt)}, address ${addr} at +${secs(addressAt)}; ` +
        `VLAN 10 peer answered ${same}/3, VLAN 20 peer ${other}/3`,
    );
    expect(same).toBe(3);
    expect(other).toBe(0);

    // The trunk NIC: the guest tags its own frames. VLAN 20 is allowed and reaches the VLAN-20 peer;
    // VLAN 10 is not in the trunk, so the VLAN-10 peer stays out of reach through it.
    const trunkMac = vmMac(VM, 1);
    const setup = await lv.agentExec(VM, "/bin/sh", [
      "-c",
      [
        "export PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        `IF=$(for d in /sys/class/net/*; do [ "$(cat $d/address)" = "${trunkMac}" ] && basename $d; done)`,
        'ip link set "$IF" up',
        'ip link add link "$IF" name t20 type vlan id 20 && ip addr add 10.99.0.70/24 dev t20 && ip link set t20 up',
        'ip link add link "$IF" name t10 type vlan id 10 && ip addr add 10.99.0.71/24 dev t10 && ip link set t10 up',
      ].join("\n"),
    ]);
    expect(setup.exitCode, setup.stderr).toBe(0);
    const trunk20 = await ping(PEERS[1].ip, "t20");
    const trunk10 = await ping(PEERS[0].ip, "t10");
    console.log(`[e2e ovs] trunk [20]: VLAN 20 peer answered ${trunk20}/3, VLAN 10 peer ${trunk10}/3`);
    expect(trunk20).toBe(3);
    expect(trunk10).toBe(0);
    guestOk = true;
    await deleteVm(VM, { libvirt: lv, dir: work });
  }, 420_000);

  it("kvmstrap undo removes the OVS bridge and both libvirt networks", async () => {
    for (const p of PEERS) await execa("ovs-vsctl", ["--if-exists", "del-port", BRIDGE, p.port], { env });
    const r = await kvmstrap([
      "undo",
      "--yes",
      "--connect",
      daemon?.uri as string,
      "--state-dir",
      stateDir(),
    ]);
    expect(r.exitCode, r.stderr).toBe(0);
    const names = (await lv.netList()).map((n) => n.name);
    expect(names).not.toContain(NAT);
    expect(names).not.toContain(ISO);
    const exists = await execa("ovs-vsctl", ["br-exists", BRIDGE], { env, reject: false });
    expect(exists.exitCode).toBe(2);
  }, 120_000);

  it("kvmstrap apply without a confirmation reverts the OVS bridge when its timer runs out (exit 1)", async () => {
    const state = path.join(work, "state-revert");
    const t = Date.now();
    const r = await kvmstrap([
      "apply",
      answerFile(),
      "--yes",
      "--connect",
      daemon?.uri as string,
      "--state-dir",
      state,
      "--confirm-timeout",
      "3",
    ]);
    console.log(`[e2e ovs] unconfirmed apply reverted after ${secs(Date.now() - t)}`);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/revert/i);
    const exists = await execa("ovs-vsctl", ["br-exists", BRIDGE], { env, reject: false });
    expect(exists.exitCode).toBe(2);
    // The libvirt networks are outside the network group (they cannot cut the host off): kept,
    // and undo removes them.
    expect((await lv.netList()).map((n) => n.name)).toEqual(expect.arrayContaining([NAT, ISO]));
    const u = await kvmstrap(["undo", "--yes", "--connect", daemon?.uri as string, "--state-dir", state]);
    expect(u.exitCode, u.stderr).toBe(0);
    expect((await lv.netList()).map((n) => n.name)).not.toContain(NAT);
  }, 120_000);
});
