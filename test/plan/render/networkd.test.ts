// There is no offline validator for networkd files (`systemd-networkd` has no test mode and
// `systemd-analyze verify` only reads units). Instead: the files parse as INI, and every Section.Key
// we write is one that this systemd-networkd binary knows: its gperf tables keep them as strings
// ("NetDev.MACAddress"), so the installed daemon itself is the reference.
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderNetworkd } from "../../../src/plan/render/networkd.js";
import type { NetworkDesired } from "../../../src/plan/render/types.js";
import { iniGet, MAC1, NETS, parseIni } from "./helpers.js";

const BINARY = "/lib/systemd/systemd-networkd";

function knownKeys(): Set<string> {
  const strings = readFileSync(BINARY).toString("latin1").split("\0");
  return new Set(strings.filter((s) => /^[A-Z][A-Za-z0-9]*\.[A-Z][A-Za-z0-9]*$/.test(s)));
}

const byName = (n: NetworkDesired) => new Map(renderNetworkd(n).map((f) => [f.path.split("/").pop(), f]));

describe("renderNetworkd", () => {
  it("bridge netdev carries the uplink's MAC; the port joins it by name", () => {
    const files = byName(NETS["bridge over a NIC with DHCP"] as NetworkDesired);
    const netdev = parseIni(files.get("60-kvmstrap-br0.netdev")?.content ?? "");
    expect(iniGet(netdev, "NetDev", "Kind")).toEqual(["bridge"]);
    expect(iniGet(netdev, "NetDev", "MACAddress")).toEqual([MAC1]);
    const port = parseIni(files.get("60-kvmstrap-eno1.network")?.content ?? "");
    expect(iniGet(port, "Match", "Name")).toEqual(["eno1"]);
    expect(iniGet(port, "Match", "MACAddress")).toEqual([]);
    expect(iniGet(port, "Network", "Bridge")).toEqual(["br0"]);
    expect(iniGet(parseIni(files.get("60-kvmstrap-br0.network")?.content ?? ""), "Network", "DHCP")).toEqual([
      "ipv4",
    ]);
  });

  it("static addressing, routes, bond ports and VLANs", () => {
    const s = parseIni(
      byName(NETS["static bridge with gateway and DNS"] as NetworkDesired).get("60-kvmstrap-br0.network")
        ?.content ?? "",
    );
    expect(iniGet(s, "Network", "Address")).toEqual(["192.0.2.10/24", "2001:db8::10/64"]);
    expect(iniGet(s, "Network", "DNS")).toEqual(["192.0.2.53", "2001:db8::53"]);
    expect(iniGet(s, "Route", "Metric")).toEqual(["50"]);
    expect(iniGet(s, "Link", "MTUBytes")).toEqual(["9000"]);
    const b = byName(NETS["bond under a bridge"] as NetworkDesired);
    expect(iniGet(parseIni(b.get("60-kvmstrap-eno2.network")?.content ?? ""), "Network", "Bond")).toEqual([
      "bond0",
    ]);
    expect(iniGet(parseIni(b.get("60-kvmstrap-bond0.network")?.content ?? ""), "Network", "Bridge")).toEqual([
      "vmbr0",
    ]);
    const v = byName(NETS["vlan on a bridge"] as NetworkDesired);
    expect(iniGet(parseIni(v.get("60-kvmstrap-vlan20.netdev")?.content ?? ""), "VLAN", "Id")).toEqual(["20"]);
    expect(iniGet(parseIni(v.get("60-kvmstrap-br0.network")?.content ?? ""), "Network", "VLAN")).toEqual([
      "vlan20",
    ]);
    expect(
      iniGet(parseIni(v.get("60-kvmstrap-br0.netdev")?.content ?? ""), "Bridge", "VLANFiltering"),
    ).toEqual(["yes"]);
  });

  const tool = existsSync(BINARY);
  if (!tool)
    it.skip(`every key is known to systemd-networkd: ${BINARY} is missing (package systemd)`, () => {});
  it.skipIf(!tool)("every Section.Key written is in the installed systemd-networkd's tables", () => {
    const known = knownKeys();
    expect(known.has("NetDev.MACAddress")).toBe(true);
    for (const n of Object.values(NETS)) {
      for (const f of renderNetworkd(n)) {
        for (const [section, keys] of parseIni(f.content)) {
          for (const [key] of keys)
            expect(known, `${f.path}: ${section}.${key}`).toContain(`${section}.${key}`);
        }
      }
    }
  });
});
