import { describe, expect, it } from "vitest";
import {
  globMatches,
  networkdMayMatch,
  takeOverIfupdown,
  takeOverNetplan,
  takeOverNetworkd,
  takeOverNmProfile,
} from "../../../src/plan/render/takeover.js";

const ourFile = (n: string) => `60-kvmstrap-${n}.network`;

describe("networkd takeover", () => {
  it("matches Name= globs as fnmatch does, honouring per-entry negation", () => {
    expect(globMatches("en*", "eno1")).toBe(true);
    expect(globMatches("en?1", "eno1")).toBe(true);
    expect(globMatches("eth[0-3]", "eth2")).toBe(true);
    expect(globMatches("eth[!0-3]", "eth2")).toBe(false);
    expect(globMatches("br.0", "brx0")).toBe(false);
    expect(networkdMayMatch("[Match]\nName=en*\nName=!eno1\n", "eno1")).toBe(false);
    expect(networkdMayMatch("[Match]\nName=wl*\n", "eno1")).toBe(false);
    expect(networkdMayMatch("[Match]\nType=ether\n", "eno1")).toBe(true);
    expect(networkdMayMatch("[Network]\nDHCP=yes\n", "br0")).toBe(true);
  });

  it("adds a [Match] to a file that had none (it matched every link), and is idempotent", () => {
    const before = "[Network]\nDHCP=yes\n";
    const once = takeOverNetworkd("10-all.network", before, ["eno1", "br0"], ourFile);
    expect(once.startsWith("[Match]\n# kvmstrap:")).toBe(true);
    expect(once).toMatch(/^Name=!eno1 !br0$/m);
    expect(takeOverNetworkd("10-all.network", once, ["eno1", "br0"], ourFile)).toBe(once);
  });

  it("leaves files that sort after ours alone: ours match first anyway", () => {
    const f = "[Match]\nName=*\n";
    expect(takeOverNetworkd("99-default.network", f, ["eno1"], ourFile)).toBe(f);
  });
});

describe("ifupdown takeover", () => {
  it("comments out our stanzas with their options and drops our names from auto lines", () => {
    const before = [
      "auto lo eno1 eno2",
      "iface lo inet loopback",
      "",
      "iface eno1 inet static",
      "    address 192.0.2.5/24",
      "    # a comment stays",
      "",
      "iface eno2 inet dhcp",
      "allow-hotplug eno1",
      "",
    ].join("\n");
    const after = takeOverIfupdown(before, new Set(["eno1"]));
    expect(after.split("\n")).toEqual([
      "auto lo eno2",
      "iface lo inet loopback",
      "",
      "#kvmstrap: iface eno1 inet static",
      "#kvmstrap:     address 192.0.2.5/24",
      "    # a comment stays",
      "",
      "iface eno2 inet dhcp",
      "#kvmstrap: allow-hotplug eno1",
      "",
    ]);
    expect(takeOverIfupdown(after, new Set(["eno1"]))).toBe(after);
  });
});

describe("ifupdown takeover: other bridges and bonds let go of our NIC", () => {
  it("removes it from bridge-ports (a bridge still, by bridge-vlan-aware) and bond-slaves, keeping the rest", () => {
    const before = [
      "auto vmbr0",
      "iface vmbr0 inet static",
      "\taddress 192.0.2.5/24",
      "\tbridge-ports eno1",
      "\tbridge-stp off",
      "iface bond1 inet manual",
      "    bond-slaves eno1 eno3",
      "",
    ].join("\n");
    expect(takeOverIfupdown(before, new Set(["eno1"])).split("\n")).toEqual([
      "auto vmbr0",
      "iface vmbr0 inet static",
      "\taddress 192.0.2.5/24",
      "#kvmstrap: \tbridge-ports eno1",
      "\tbridge-vlan-aware no",
      "\tbridge-stp off",
      "iface bond1 inet manual",
      "    bond-slaves eno3",
      "",
    ]);
  });
});

describe("NetworkManager takeover", () => {
  const port = { name: "eno1", mac: "52:54:00:aa:00:01" };
  it("binds by interface-name, by MAC, or as an ethernet profile bound to no device", () => {
    const byName = "[connection]\nid=a\nuuid=u1\ntype=ethernet\ninterface-name=eno1\n";
    expect(takeOverNmProfile(byName, [port])).toMatchObject({ uuid: "u1", autoconnect: true, port: "eno1" });
    const byMac = "[connection]\nid=b\nuuid=u2\ntype=ethernet\n\n[ethernet]\nmac-address=52:54:00:AA:00:01\n";
    expect(takeOverNmProfile(byMac, [port])?.content).toContain("autoconnect=false");
    const any = "[connection]\nid=c\nuuid=u3\ntype=ethernet\n";
    expect(takeOverNmProfile(any, [port])?.port).toBe("eno1");
    const other = "[connection]\nid=d\nuuid=u4\ntype=ethernet\ninterface-name=eno2\n";
    expect(takeOverNmProfile(other, [port])).toBeNull();
    const wifi = "[connection]\nid=e\nuuid=u5\ntype=wifi\n";
    expect(takeOverNmProfile(wifi, [port])).toBeNull();
  });

  it("replaces an autoconnect=true in place; an already-off profile is left as it is", () => {
    const on = "[connection]\nid=a\nuuid=u1\ntype=ethernet\ninterface-name=eno1\nautoconnect=true\n";
    const t = takeOverNmProfile(on, [port]);
    expect(t?.content).toBe(on.replace("autoconnect=true", "autoconnect=false"));
    const off = takeOverNmProfile(t?.content ?? "", [port]);
    expect(off).toMatchObject({ content: t?.content, autoconnect: false });
  });
});

describe("netplan takeover", () => {
  const ports = [{ name: "eno1", mac: "52:54:00:aa:00:01" }];
  it("strips addressing from our NIC (keeping match and set-name), drops a same-named bridge, frees ours from others", () => {
    const before = [
      "network:",
      "  version: 2",
      "  ethernets:",
      "    nic:",
      '      match: {macaddress: "52:54:00:AA:00:01"}',
      "      set-name: eno1",
      "      dhcp4: true",
      "    eno2:",
      "      dhcp4: true",
      "  bridges:",
      "    br0: {interfaces: [eno2]}",
      "    old: {interfaces: [eno1, eno2], dhcp4: true}",
      "",
    ].join("\n");
    const after = takeOverNetplan(before, new Set(["eno1", "br0"]), ports);
    expect(after).toContain("set-name: eno1");
    expect(after).not.toMatch(/nic:[\s\S]*dhcp4: true[\s\S]*eno2:/);
    expect(after).toMatch(/eno2:\n\s+dhcp4: true/);
    expect(after).not.toContain("br0");
    expect(after).toMatch(/old: \{ interfaces: \[ eno2 \], dhcp4: true \}/);
    expect(takeOverNetplan(after, new Set(["eno1", "br0"]), ports)).toBe(after);
  });
});
