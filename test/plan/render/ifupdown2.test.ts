// ifupdown2's own parser checks the file offline: `ifquery -i FILE -a` (parse and print) and
// `ifup -s -i FILE -a` (syntax check, including each addon's attribute validation; warnings fail it).
// `ifup --no-act` is not used: it still talks to the kernel over netlink, waits for dhclient, and
// ifupdown2 3.0.0 crashes in its bridge dry-run path (link_set_bridge_info_data_dry_run).
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { renderIfupdown2 } from "../../../src/plan/render/ifupdown2.js";
import type { NetworkDesired } from "../../../src/plan/render/types.js";
import { has, MAC1, NETS, run, tmp } from "./helpers.js";

const dir = tmp("ifupdown2");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Stanza = { name: string; addr_method: string; auto: boolean; config: Record<string, string | string[]> };

function write(name: string, n: NetworkDesired): string {
  const file = path.join(dir, name.replace(/\W+/g, "-"));
  writeFileSync(file, renderIfupdown2(n));
  return file;
}

describe("renderIfupdown2", () => {
  it("gives the bridge the uplink's MAC and moves a bridge MTU onto its ports", () => {
    const text = renderIfupdown2(NETS["static bridge with gateway and DNS"] as NetworkDesired);
    expect(text).toContain(`hwaddress ether ${MAC1}`);
    expect(text).toMatch(/iface eno1 inet manual\n {4}mtu 9000/);
    expect(text).not.toMatch(/iface br0[\s\S]*mtu/);
    expect(text).toContain("post-up ip route add 198.51.100.0/24 via 192.0.2.254 metric 50 dev br0");
  });

  it("says bridge-vlan-aware only when wanted: an explicit 'no' fails on kernels without VLAN filtering", () => {
    const base = NETS["static bridge with gateway and DNS"] as NetworkDesired;
    expect(renderIfupdown2(base)).not.toContain("bridge-vlan-aware");
    const aware = { ...base, bridges: base.bridges.map((b) => ({ ...b, vlanAware: true })) };
    expect(renderIfupdown2(aware)).toContain("bridge-vlan-aware yes");
  });

  it.skipIf(!has("ifup"))(
    "a bridge without ports passes ifup -s (no `bridge-ports none`) and is still a bridge",
    () => {
      const n: NetworkDesired = {
        ports: [],
        bonds: [],
        vlans: [],
        bridges: [
          { name: "br9", ports: [], stp: false, vlanAware: false, dhcp: false, addresses: ["10.9.0.1/24"] },
        ],
      };
      const file = write("portless bridge", n);
      const s = run(["ifup", "-s", "-i", file, "-a"]);
      expect(s.code, s.stderr).toBe(0);
      expect(renderIfupdown2(n)).toContain("bridge-vlan-aware no");
    },
  );

  const tool = has("ifquery");
  if (!tool) it.skip("ifquery/ifup -s: ifupdown2 is not installed", () => {});
  for (const [name, n] of Object.entries(NETS)) {
    it.skipIf(!tool)(`ifupdown2 parses and syntax-checks: ${name}`, () => {
      const file = write(name, n);
      const q = run(["ifquery", "-i", file, "-a", "-o", "json"]);
      expect(q.code, q.stderr).toBe(0);
      const stanzas = JSON.parse(q.stdout) as Stanza[];
      const names = [...n.ports, ...n.bonds, ...n.bridges, ...n.vlans].map((d) => d.name);
      expect(stanzas.map((s) => s.name).sort()).toEqual(names.sort());
      expect(stanzas.every((s) => s.auto)).toBe(true);
      const br = stanzas.find((s) => s.name === n.bridges[0]?.name);
      expect(br?.config["bridge-ports"]).toBe(n.bridges[0]?.ports.join(" "));
      expect(br?.config.hwaddress).toBe(`ether ${MAC1}`);
      const s = run(["ifup", "-s", "-i", file, "-a"]);
      expect(s.code, s.stderr).toBe(0);
      expect(s.stderr).toBe("");
    });
  }

  it.skipIf(!tool)("ifup -s really validates (a bad bridge-stp value fails)", () => {
    const file = path.join(dir, "bad");
    writeFileSync(file, "auto br9\niface br9 inet manual\n    bridge-ports none\n    bridge-stp maybe\n");
    expect(run(["ifup", "-s", "-i", file, "-a"]).code).not.toBe(0);
  });
});
