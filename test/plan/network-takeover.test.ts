// Taking over the host's existing network configuration, proven with each stack's own tool:
// systemd-networkd itself (run in a private network and mount namespace), ifupdown2's ifquery and
// `ifup -s`, and `nmcli --offline`. Without the takeover the old file keeps the uplink.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Answer, answerSchema } from "../../src/answer/schema.js";
import { detectHost } from "../../src/detect/index.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Plan, RunCommandAction } from "../../src/plan/actions.js";
import { buildPlan, planFiles } from "../../src/plan/index.js";
import { nmUuid } from "../../src/plan/render/networkmanager.js";
import { buildSriovHost, SRIOV, type SysfsFixture } from "../helpers/sysfs-fixture.js";
import { has, run, tmp } from "./render/helpers.js";

const PF = SRIOV.pfName;
const CPU = `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: vmx lm\n\n`;
const fixtures: SysfsFixture[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function host(files: Record<string, string>): SysfsFixture {
  const fx = buildSriovHost();
  fixtures.push(fx);
  fx.file("/proc/cpuinfo", CPU);
  for (const [p, c] of Object.entries(files)) fx.file(p, c);
  return fx;
}
const bridgeAnswer = (stack: string): Answer =>
  answerSchema.parse({
    version: 1,
    network: { stack, bridges: [{ name: "br0", uplink: { name: PF }, addresses: "dhcp" }] },
  });

async function planIn(fx: SysfsFixture, a: Answer): Promise<Plan> {
  const report = await detectHost({ fs: fx.fs(), pciIds: null });
  const target = new RootedTargetFs(fx.root);
  const paths = planFiles(report, a);
  const current = new Map(await Promise.all(paths.map(async (p) => [p, await target.read(p)] as const)));
  const plan = buildPlan(report, a, current);
  expect(plan.refusals).toEqual([]);
  return plan;
}

/** The directory `dir` as the plan leaves it: the files there now, with the plan's writes applied. */
function resultOf(plan: Plan, files: Record<string, string>, dir: string): Map<string, string> {
  const out = new Map(Object.entries(files).filter(([p]) => p.startsWith(`${dir}/`)));
  for (const a of plan.actions) {
    if (a.kind === "write-file" && a.path.startsWith(`${dir}/`)) out.set(a.path, a.content);
    if (a.kind === "remove-file") out.delete(a.path);
  }
  return out;
}
function materialise(files: Map<string, string>, dir: string): string {
  const at = tmp("net");
  dirs.push(at);
  for (const [p, c] of files) {
    const real = path.join(at, p.slice(dir.length + 1));
    mkdirSync(path.dirname(real), { recursive: true });
    writeFileSync(real, c);
  }
  return at;
}

/**
 * Runs the real systemd-networkd on `netDir` in a fresh network and mount namespace with a veth
 * named like the uplink; prints the uplink's `ip -j link` once networkd had time to configure it.
 */
const NETWORKD = `set -e
mount -t tmpfs tmpfs /run
mount -t sysfs -o ro sysfs /sys  # read-only /sys: networkd does not wait for udev
mkdir -p /run/systemd/netif/links /run/systemd/netif/leases /run/systemd/netif/lldp
chown -R systemd-network:systemd-network /run/systemd/netif
mount --bind "$1" /etc/systemd/network
ip link add "$2" type veth peer name kvmspeer
ip link set lo up; ip link set kvmspeer up
SYSTEMD_LOG_LEVEL=debug timeout 8 /lib/systemd/systemd-networkd >/run/networkd.log 2>&1 &
for i in $(seq 1 40); do sleep 0.2; grep -q "$2: found matching network" /run/networkd.log && break; done
for i in $(seq 1 10); do sleep 0.2; ip -j link show "$2" | grep -q '"master"' && break; done
ip -j link show "$2"
grep -m1 "$2: found matching network" /run/networkd.log || echo "no matching network"
ip -j link show br0 2>/dev/null || echo "[]"
kill %1 2>/dev/null || true`;
const canRunNetworkd =
  has("unshare") &&
  spawnSync("unshare", ["-m", "-n", "--propagation", "private", "true"]).status === 0 &&
  has("/lib/systemd/systemd-networkd");
/** The uplink's master under the real networkd, and the .network file networkd chose for it. */
function uplinkUnderNetworkd(netDir: string): { master?: string; file: string; bridgeMac?: string } {
  chmodSync(netDir, 0o755); // networkd reads as systemd-network, and mkdtemp makes 0700
  const r = run([
    "unshare",
    "-m",
    "-n",
    "--propagation",
    "private",
    "bash",
    "-c",
    NETWORKD,
    "nd",
    netDir,
    PF,
  ]);
  expect(r.code, r.stderr).toBe(0);
  const [json = "[]", chose = "", bridge = "[]"] = r.stdout.trim().split("\n");
  return {
    master: JSON.parse(json)[0]?.master,
    file: /network '([^']+)'/.exec(chose)?.[1] ?? chose,
    bridgeMac: JSON.parse(bridge)[0]?.address,
  };
}

describe("systemd-networkd: an older .network file for the uplink no longer wins", () => {
  const OLD = {
    "/etc/systemd/network/10-uplink.network": `[Match]\nName=${PF}\n\n[Network]\nDHCP=yes\n`,
    // Matched by MAC: would also match br0, which takes the uplink's MAC.
    "/etc/systemd/network/20-bymac.network": "[Match]\nMACAddress=a0:36:9f:00:00:01\n\n[Network]\nDHCP=yes\n",
    // Creates br0 before ours would: networkd keeps the first definition (without our MAC).
    "/etc/systemd/network/25-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\n",
    // Does not match anything of ours: left alone.
    "/etc/systemd/network/30-other.network": "[Match]\nName=wl*\n\n[Network]\nDHCP=yes\n",
  };

  it("older files that could match get Name=! for our interfaces; others stay byte for byte", async () => {
    const plan = await planIn(host(OLD), bridgeAnswer("networkd"));
    const files = resultOf(plan, OLD, "/etc/systemd/network");
    // Name=<uplink> cannot match br0: only the uplink is excluded there.
    expect(files.get("/etc/systemd/network/10-uplink.network")).toMatch(new RegExp(`^Name=!${PF}$`, "m"));
    expect(files.get("/etc/systemd/network/20-bymac.network")).toContain(`Name=!${PF} !br0`);
    expect(files.has("/etc/systemd/network/25-br0.netdev")).toBe(false);
    expect(
      plan.actions.find((a) => a.id === "network.takeover./etc/systemd/network/25-br0.netdev"),
    ).toMatchObject({
      kind: "remove-file",
      previous: OLD["/etc/systemd/network/25-br0.netdev"],
    });
    expect(files.get("/etc/systemd/network/30-other.network")).toBe(
      OLD["/etc/systemd/network/30-other.network"],
    );
    const ids = plan.actions.map((a) => a.id);
    expect(ids.indexOf("network.takeover./etc/systemd/network/10-uplink.network")).toBeGreaterThan(
      ids.indexOf("network.reload-on-revert"),
    );
    // A second plan on the taken-over files changes nothing.
    const again = await planIn(host(Object.fromEntries(files)), bridgeAnswer("networkd"));
    expect(again.actions).toEqual([]);
  });

  it.skipIf(!canRunNetworkd)(
    "the real systemd-networkd enslaves the uplink to br0 (needs root for unshare)",
    async () => {
      const plan = await planIn(host(OLD), bridgeAnswer("networkd"));
      const dir = materialise(resultOf(plan, OLD, "/etc/systemd/network"), "/etc/systemd/network");
      expect(uplinkUnderNetworkd(dir)).toEqual({
        master: "br0",
        file: `/etc/systemd/network/60-kvmstrap-${PF}.network`,
        bridgeMac: "a0:36:9f:00:00:01", // the uplink's, from our .netdev
      });
    },
  );

  it.skipIf(!canRunNetworkd)(
    "control: with the old files untouched, networkd keeps the uplink out of br0",
    async () => {
      const plan = await planIn(host(OLD), bridgeAnswer("networkd"));
      const files = resultOf(plan, OLD, "/etc/systemd/network");
      for (const [p, c] of Object.entries(OLD)) files.set(p, c);
      const seen = uplinkUnderNetworkd(materialise(files, "/etc/systemd/network"));
      expect(seen).toMatchObject({ master: undefined, file: "/etc/systemd/network/10-uplink.network" });
      expect(seen.bridgeMac).not.toBe("a0:36:9f:00:00:01");
    },
  );
});

describe("ifupdown2: one stanza per interface", () => {
  const OLD = {
    "/usr/share/ifupdown2/__init__.py": "",
    "/etc/network/interfaces": `auto lo ${PF}\niface lo inet loopback\n\niface ${PF} inet dhcp\n    mtu 1500\n\nsource /etc/network/interfaces.d/*\n`,
    "/etc/network/interfaces.d/uplink": `allow-hotplug ${PF}\niface ${PF} inet6 auto\n`,
  };

  it.skipIf(!has("ifquery"))(
    "ifquery sees exactly one stanza for the uplink, inet manual, and ifup -s is clean",
    async () => {
      const plan = await planIn(host(OLD), bridgeAnswer("auto"));
      const tree = resultOf(plan, OLD, "/etc/network");
      const dir = materialise(tree, "/etc/network");
      const main = path.join(dir, "interfaces");
      const text = (tree.get("/etc/network/interfaces") ?? "").replace(
        "source /etc/network/interfaces.d/*",
        `source ${dir}/interfaces.d/*`,
      );
      writeFileSync(main, text);
      const q = run(["ifquery", "-i", main, "-a"]);
      expect(q.code, q.stderr).toBe(0);
      const stanzas = q.stdout.split("\n").filter((l) => l.startsWith(`iface ${PF} `));
      expect(stanzas).toEqual([`iface ${PF} inet manual`]);
      expect(q.stdout).toContain("iface lo inet loopback");
      const s = run(["ifup", "-s", "-i", main, "-a"]);
      expect(s.code, s.stderr).toBe(0);
      expect(s.stderr).not.toMatch(/ignoring ip address/);
    },
  );
});

describe("ifupdown2: the interfaces file gets both its source line and the takeover in one edit", () => {
  it.skipIf(!has("ifquery"))("no source line before: one stanza for the uplink after", async () => {
    const files = {
      "/usr/share/ifupdown2/__init__.py": "",
      "/etc/network/interfaces": `auto lo ${PF}\niface lo inet loopback\n\niface ${PF} inet dhcp\n`,
    };
    const plan = await planIn(host(files), bridgeAnswer("ifupdown2"));
    const writes = plan.actions.filter(
      (a) => a.kind === "write-file" && a.path === "/etc/network/interfaces",
    );
    expect(writes).toHaveLength(1);
    const tree = resultOf(plan, files, "/etc/network");
    const dir = materialise(tree, "/etc/network");
    const main = path.join(dir, "interfaces");
    const text = tree.get("/etc/network/interfaces") ?? "";
    expect(text).toMatch(/^source \/etc\/network\/interfaces\.d\/\*$/m);
    writeFileSync(main, text.replace("source /etc/network/interfaces.d/*", `source ${dir}/interfaces.d/*`));
    const q = run(["ifquery", "-i", main, "-a"]);
    expect(q.code, q.stderr).toBe(0);
    expect(q.stdout.split("\n").filter((l) => l.startsWith(`iface ${PF} `))).toEqual([
      `iface ${PF} inet manual`,
    ]);
  });
});

describe("ifupdown2 on a Proxmox-style host: the existing vmbr0 over the uplink", () => {
  const OLD = {
    "/usr/share/ifupdown2/__init__.py": "",
    "/etc/network/interfaces": [
      "auto lo",
      "iface lo inet loopback",
      "",
      `iface ${PF} inet manual`,
      "",
      "auto vmbr0",
      "iface vmbr0 inet static",
      "\taddress 192.0.2.5/24",
      "\tgateway 192.0.2.1",
      `\tbridge-ports ${PF}`,
      "\tbridge-stp off",
      "\tbridge-fd 0",
      "",
      "source /etc/network/interfaces.d/*",
      "",
    ].join("\n"),
  };
  const answerFor = (bridge: string) =>
    answerSchema.parse({
      version: 1,
      network: {
        bridges: [{ name: bridge, uplink: { name: PF }, addresses: ["192.0.2.5/24"], gateway: "192.0.2.1" }],
      },
    });
  /** ifquery's view of the whole tree the plan leaves. */
  async function query(bridge: string): Promise<string> {
    const plan = await planIn(host(OLD), answerFor(bridge));
    const tree = resultOf(plan, OLD, "/etc/network");
    const dir = materialise(tree, "/etc/network");
    const main = path.join(dir, "interfaces");
    const text = tree.get("/etc/network/interfaces") ?? "";
    writeFileSync(main, text.replace("source /etc/network/interfaces.d/*", `source ${dir}/interfaces.d/*`));
    const q = run(["ifquery", "-i", main, "-a"]);
    expect(q.code, q.stderr).toBe(0);
    const s = run(["ifup", "-s", "-i", main, "-a"]);
    expect(s.code, s.stderr).toBe(0);
    return q.stdout;
  }
  const portLists = (out: string) =>
    out
      .split("\n")
      .filter((l) => /bridge-ports/.test(l))
      .map((l) => l.trim());

  it.skipIf(!has("ifquery"))("answer's vmbr0: one vmbr0 stanza, ours, and one uplink stanza", async () => {
    const out = await query("vmbr0");
    expect(out.split("\n").filter((l) => l.startsWith("iface vmbr0 "))).toHaveLength(1);
    expect(out.split("\n").filter((l) => l.startsWith(`iface ${PF} `))).toHaveLength(1);
    expect(portLists(out)).toEqual([`bridge-ports ${PF}`]);
  });

  it.skipIf(!has("ifquery"))("answer's br0: the old vmbr0 lets go of the uplink", async () => {
    const out = await query("br0");
    expect(portLists(out)).toEqual([`bridge-ports ${PF}`]);
    const br0 = out.split("\n\n").find((st) => st.includes("iface br0 "));
    expect(br0).toContain(`bridge-ports ${PF}`);
    const vmbr0 = out.split("\n\n").find((st) => st.includes("iface vmbr0 "));
    expect(vmbr0).toContain("bridge-vlan-aware no"); // still a bridge, now without ports
  });
});

describe("NetworkManager: the new profiles are activated; the old one stops competing", () => {
  const OLD_UUID = "2c3f2a4e-8a0e-4d3b-9e4f-0a1b2c3d4e5f";
  const OLD = {
    "/etc/NetworkManager/system-connections/Wired.nmconnection": `[connection]\nid=Wired\nuuid=${OLD_UUID}\ntype=ethernet\ninterface-name=${PF}\n\n[ipv4]\nmethod=auto\n`,
  };

  it("activates kvmstrap-br0 after the reload; the old profile gets autoconnect=false and is brought back on revert", async () => {
    const plan = await planIn(host(OLD), bridgeAnswer("networkmanager"));
    const ids = plan.actions.map((a) => a.id);
    const activate = plan.actions.find((a) => a.id === "network.activate.br0") as RunCommandAction;
    expect(activate.argv).toEqual(["nmcli", "connection", "up", "uuid", nmUuid("kvmstrap-br0")]);
    expect(ids.indexOf("network.activate.br0")).toBeGreaterThan(ids.indexOf("network.reload"));
    // Undo runs newest first: the reload of the restored files, then the old profile comes back.
    const back = plan.actions.find((a) => a.id === `network.reactivate-on-revert.${PF}`) as RunCommandAction;
    expect(back.undo).toEqual(["nmcli", "connection", "up", "uuid", OLD_UUID, "ifname", PF]);
    expect(ids.indexOf(back.id)).toBeLessThan(ids.indexOf("network.reload-on-revert"));
    const old = resultOf(plan, OLD, "/etc/NetworkManager/system-connections").get(
      "/etc/NetworkManager/system-connections/Wired.nmconnection",
    );
    expect(old).toContain("autoconnect=false");
  });

  it.skipIf(!has("nmcli"))("nmcli --offline reads the edited old profile as autoconnect=false", async () => {
    const plan = await planIn(host(OLD), bridgeAnswer("networkmanager"));
    const old =
      resultOf(plan, OLD, "/etc/NetworkManager/system-connections").get(
        "/etc/NetworkManager/system-connections/Wired.nmconnection",
      ) ?? "";
    const r = run(["nmcli", "--offline", "connection", "modify", "connection.zone", ""], { input: old });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^autoconnect=false$/m);
    expect(r.stdout).toContain(`uuid=${OLD_UUID}`);
    expect(r.stdout).toContain(`interface-name=${PF}`);
  });
});

describe("netplan: an older YAML no longer leaves addresses on what is now a bridge port", () => {
  const OLD = {
    "/etc/netplan/50-cloud-init.yaml": [
      "# written by cloud-init",
      "network:",
      "  version: 2",
      "  ethernets:",
      "    uplink:",
      '      match: {macaddress: "a0:36:9f:00:00:01"}',
      `      set-name: ${PF}`,
      "      dhcp4: true",
      "      addresses: [192.0.2.5/24]",
      "      routes: [{to: default, via: 192.0.2.1}]",
      "",
    ].join("\n"),
  };
  /** What `netplan generate` makes of the tree: the .network files networkd would read. */
  function generate(files: Map<string, string>): Map<string, string> {
    const root = tmp("netplan-root");
    dirs.push(root);
    for (const [p, c] of files) {
      mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
      writeFileSync(path.join(root, p), c, { mode: 0o600 });
    }
    const r = run(["netplan", "generate", "--root-dir", root]);
    expect(r.code, r.stderr).toBe(0);
    const out = path.join(root, "run/systemd/network");
    return new Map(readdirSync(out).map((n) => [n, readFileSync(path.join(out, n), "utf8")]));
  }
  const portFiles = (g: Map<string, string>) =>
    [...g].filter(([n, c]) => n.endsWith(".network") && new RegExp(`^Name=${PF}$`, "m").test(c));

  it.skipIf(!has("netplan"))(
    "netplan generate: the uplink's files carry Bridge=br0 and no address, DHCP or route",
    async () => {
      const plan = await planIn(host(OLD), bridgeAnswer("netplan"));
      const g = generate(resultOf(plan, OLD, "/etc/netplan"));
      const files = portFiles(g);
      expect(files.length).toBeGreaterThan(0);
      for (const [, c] of files) {
        expect(c).not.toMatch(/^(Address|DHCP|Gateway)=/m);
        expect(c).not.toMatch(/^\[Route\]/m);
      }
      expect(files.some(([, c]) => /^Bridge=br0$/m.test(c))).toBe(true);
      const kept = resultOf(plan, OLD, "/etc/netplan").get("/etc/netplan/50-cloud-init.yaml") ?? "";
      expect(kept).toContain(`set-name: ${PF}`); // the NIC keeps its name
      expect(kept).toContain("# written by cloud-init");
    },
  );

  it.skipIf(!has("netplan"))("control: the old YAML untouched leaves 192.0.2.5 on the uplink", async () => {
    const plan = await planIn(host(OLD), bridgeAnswer("netplan"));
    const files = resultOf(plan, OLD, "/etc/netplan");
    for (const [p, c] of Object.entries(OLD)) files.set(p, c);
    const all = portFiles(generate(files))
      .map(([, c]) => c)
      .join("\n");
    expect(all).toMatch(/^Address=192\.0\.2\.5\/24$/m);
  });
});
