// The bridge takeover sequence applied for real, inside a throwaway network namespace: a veth pair
// stands in for the uplink NIC and its switch port. Skipped (visibly) when namespaces are not allowed.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bridgeTakeoverCommands } from "../../../src/plan/render/iproute.js";
import type { NetBridge } from "../../../src/plan/render/types.js";
import { has, run } from "./helpers.js";

const NS = `kvms-test-${process.pid}`;
const PORT = { name: "veth-up", mac: "52:54:00:be:ef:01" };
const BRIDGE: NetBridge = {
  name: "br0",
  ports: [PORT.name],
  mac: PORT.mac,
  stp: false,
  vlanAware: false,
  dhcp: false,
  addresses: ["192.0.2.10/24"],
  gateway: "192.0.2.1",
  routes: [{ to: "198.51.100.0/24", via: "192.0.2.254", metric: 50 }],
};

const ipn = (...args: string[]) => run(["ip", "-n", NS, ...args]);
const usable = has("ip") && run(["ip", "netns", "add", NS]).code === 0;
/** Some kernels (this CI's among them) lack CONFIG_BRIDGE_VLAN_FILTERING. */
const vlanFiltering =
  usable &&
  ipn("link", "add", "brprobe", "type", "bridge").code === 0 &&
  ipn("link", "set", "dev", "brprobe", "type", "bridge", "vlan_filtering", "1").code === 0;

type Link = {
  ifname: string;
  address: string;
  master?: string;
  operstate: string;
  linkinfo?: { info_data?: Record<string, unknown> };
};
const link = (name: string) => (JSON.parse(ipn("-d", "-j", "link", "show", name).stdout) as Link[])[0];

beforeAll(() => {
  if (!usable) return;
  // The uplink as it is before kvmstrap: carries the host's address and the default route.
  for (const argv of [
    ["link", "add", PORT.name, "address", PORT.mac, "type", "veth", "peer", "name", "veth-sw"],
    ["link", "set", "veth-sw", "up"],
    ["link", "set", PORT.name, "up"],
    ["address", "add", "192.0.2.10/24", "dev", PORT.name],
    ["route", "add", "default", "via", "192.0.2.1", "dev", PORT.name],
    ["link", "add", "veth-b", "type", "veth", "peer", "name", "veth-b-sw"],
  ]) {
    const r = ipn(...argv);
    if (r.code !== 0) throw new Error(`setup ip ${argv.join(" ")}: ${r.stderr}`);
  }
});

afterAll(() => {
  if (usable) run(["ip", "netns", "del", NS]);
});

describe("bridgeTakeoverCommands", () => {
  it("returns argv lists only (no shell), creating the bridge with the port's MAC before enslaving it", () => {
    const cmds = bridgeTakeoverCommands(BRIDGE, PORT);
    expect(cmds.every((c) => c[0] === "ip")).toBe(true);
    const at = (needle: string[]) => cmds.findIndex((c) => needle.every((n) => c.includes(n)));
    expect(at(["address", PORT.mac])).toBeLessThan(at(["master", "br0"]));
    expect(at(["master", "br0"])).toBeLessThan(at(["br0", "up"]));
    expect(() => bridgeTakeoverCommands(BRIDGE, { name: "x; reboot", mac: PORT.mac })).toThrow();
  });

  if (!usable) it.skip("in a network namespace: `ip netns add` is not permitted here", () => {});
  it.skipIf(!usable)(
    "in a network namespace: br0 takes the uplink's MAC, address and routes in one sequence",
    () => {
      for (const argv of bridgeTakeoverCommands(BRIDGE, PORT)) {
        const r = run([argv[0] ?? "ip", "-n", NS, ...argv.slice(1)]);
        expect(r.code, `${argv.join(" ")}: ${r.stderr}`).toBe(0);
      }
      const br = link("br0");
      expect(br?.address).toBe(PORT.mac);
      expect(br?.linkinfo?.info_data?.stp_state).toBe(0);
      expect(link(PORT.name)?.master).toBe("br0");
      const addrs = JSON.parse(ipn("-j", "-4", "address", "show").stdout) as {
        ifname: string;
        addr_info: { local: string }[];
      }[];
      expect(addrs.find((a) => a.ifname === "br0")?.addr_info.map((a) => a.local)).toEqual(["192.0.2.10"]);
      expect(addrs.find((a) => a.ifname === PORT.name)?.addr_info ?? []).toEqual([]);
      const routes = ipn("-4", "route", "show").stdout;
      expect(routes).toContain("default via 192.0.2.1 dev br0");
      expect(routes).toContain("198.51.100.0/24 via 192.0.2.254 dev br0 metric 50");
    },
  );

  if (!vlanFiltering)
    it.skip("vlan-aware bridge in a namespace: this kernel has no bridge VLAN filtering", () => {});
  it.skipIf(!vlanFiltering)("in a network namespace: a vlan-aware bridge gets vlan_filtering 1", () => {
    const vb: NetBridge = {
      ...BRIDGE,
      name: "br1",
      vlanAware: true,
      addresses: [],
      gateway: undefined,
      routes: [],
    };
    for (const argv of bridgeTakeoverCommands(vb, { name: "veth-b", mac: "52:54:00:be:ef:02" })) {
      const r = run([argv[0] ?? "ip", "-n", NS, ...argv.slice(1)]);
      expect(r.code, `${argv.join(" ")}: ${r.stderr}`).toBe(0);
    }
    expect(link("br1")?.linkinfo?.info_data?.vlan_filtering).toBe(1);
    expect(link("br1")?.address).toBe("52:54:00:be:ef:02");
  });
});
