import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { NETPLAN_MODE, NETPLAN_PATH, renderNetplan } from "../../../src/plan/render/netplan.js";
import type { NetworkDesired } from "../../../src/plan/render/types.js";
import { has, NETS, run, tmp } from "./helpers.js";

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

/** Writes the YAML into a fresh root, runs the real `netplan generate`, returns the networkd files. */
function generate(n: NetworkDesired): { code: number; stderr: string; files: Map<string, string> } {
  const root = tmp("netplan");
  roots.push(root);
  const file = path.join(root, NETPLAN_PATH);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, renderNetplan(n), { mode: NETPLAN_MODE });
  const r = run(["netplan", "generate", "--root-dir", root]);
  const dir = path.join(root, "run/systemd/network");
  const files = new Map<string, string>();
  for (const f of r.code === 0 ? readdirSync(dir) : []) files.set(f, readFileSync(path.join(dir, f), "utf8"));
  return { code: r.code, stderr: r.stderr, files };
}

describe("renderNetplan", () => {
  it("writes version 2 with the networkd renderer and quotes MACs (YAML 1.1 would read them as numbers)", () => {
    const text = renderNetplan(NETS["bridge over a NIC with DHCP"] as NetworkDesired);
    expect(parse(text)).toMatchObject({
      network: {
        version: 2,
        renderer: "networkd",
        ethernets: { eno1: { dhcp4: false } },
        bridges: { br0: { interfaces: ["eno1"], macaddress: "52:54:00:aa:00:01", dhcp4: true } },
      },
    });
    expect(text).toContain('macaddress: "52:54:00:aa:00:01"');
  });

  it("refuses a bridge port that is not defined", () => {
    const n = structuredClone(NETS["bridge over a NIC with DHCP"] as NetworkDesired);
    n.ports = [];
    expect(() => renderNetplan(n)).toThrow(/eno1 is neither a port nor a bond/);
  });

  const tool = has("netplan");
  for (const [name, n] of Object.entries(NETS)) {
    it.skipIf(!tool)(`netplan generate accepts: ${name}`, () => {
      const r = generate(n);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).not.toMatch(/error/i);
      const bridge = n.bridges[0];
      if (!bridge) throw new Error("fixture without bridge");
      const netdev = r.files.get(`10-netplan-${bridge.name}.netdev`) ?? "";
      expect(netdev).toContain("Kind=bridge");
      expect(netdev).toContain(`MACAddress=${bridge.mac}`);
      for (const p of n.ports)
        expect(r.files.get(`10-netplan-${p.name}.network`)).toMatch(/^(Bridge|Bond)=/m);
    });
  }
  if (!tool) it.skip("netplan generate: netplan.io is not installed", () => {});

  it.skipIf(!tool)("netplan generate: static addressing, bond and vlan come through to networkd", () => {
    const s = generate(NETS["static bridge with gateway and DNS"] as NetworkDesired).files.get(
      "10-netplan-br0.network",
    );
    expect(s).toContain("Address=192.0.2.10/24");
    expect(s).toContain("Gateway=192.0.2.1");
    expect(s).toContain("DNS=192.0.2.53");
    expect(s).toContain("Domains=lab.example");
    const b = generate(NETS["bond under a bridge"] as NetworkDesired).files;
    expect(b.get("10-netplan-bond0.netdev")).toMatch(/Kind=bond[\s\S]*Mode=active-backup/);
    expect(b.get("10-netplan-bond0.network")).toContain("Bridge=vmbr0");
    const v = generate(NETS["vlan on a bridge"] as NetworkDesired).files;
    expect(v.get("10-netplan-vlan20.netdev")).toMatch(/Kind=vlan[\s\S]*Id=20/);
    expect(v.get("10-netplan-br0.network")).toContain("VLAN=vlan20");
  });
});
