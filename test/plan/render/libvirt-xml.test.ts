// Every renderer output is checked with libvirt's own RelaxNG schemas (virt-xml-validate, libvirt-clients
// + libxml2-utils). libvirt 9 names the pool schema "storagepool".
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  renderBridgeNetworkXml,
  renderDefaultNetworkXml,
  renderHostdevNetworkXml,
  renderPoolXml,
  xmlEscape,
} from "../../../src/plan/render/libvirt-xml.js";
import { has, run, tmp } from "./helpers.js";

const dir = tmp("libvirt-xml");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cases: [string, "storagepool" | "network", string][] = [
  [
    "dir pool",
    "storagepool",
    renderPoolXml({ name: "images", type: "dir", path: "/var/lib/libvirt/images" }),
  ],
  [
    "logical pool",
    "storagepool",
    renderPoolXml({
      name: "vmdata",
      type: "logical",
      vgName: "vg_vm",
      sourceDevices: ["/dev/disk/by-id/ata-A", "/dev/disk/by-id/ata-B"],
    }),
  ],
  [
    "zfs pool",
    "storagepool",
    renderPoolXml({ name: "tank", type: "zfs", sourceDevices: ["/dev/disk/by-id/nvme-X"] }),
  ],
  [
    "nat network",
    "network",
    renderDefaultNetworkXml({
      name: "default",
      bridge: "virbr0",
      subnet: "192.168.122.1/24",
      dhcpRange: ["192.168.122.2", "192.168.122.254"],
    }),
  ],
  [
    "nat network without DHCP",
    "network",
    renderDefaultNetworkXml({ name: "n2", bridge: "virbr1", subnet: "10.9.0.1/16" }),
  ],
  ["bridge network", "network", renderBridgeNetworkXml("host-br0", "br0")],
  ["hostdev network", "network", renderHostdevNetworkXml({ name: "sriov-enp3s0f0", pfName: "enp3s0f0" })],
  ["escaped names", "network", renderBridgeNetworkXml(`a&b<"c'>`, "br0")],
];

describe("libvirt XML", () => {
  it("escapes markup in every value", () => {
    expect(xmlEscape(`a&b<"c'>`)).toBe("a&amp;b&lt;&quot;c&apos;&gt;");
    expect(renderBridgeNetworkXml(`a&b<"c'>`, "br0")).toContain("<name>a&amp;b&lt;&quot;c&apos;&gt;</name>");
  });

  it("hostdev network names the PF; logical pool names the VG and devices", () => {
    expect(renderHostdevNetworkXml({ name: "n", pfName: "enp3s0f0" })).toMatch(
      /<forward mode="hostdev" managed="yes">\s*<pf dev="enp3s0f0"\/>/,
    );
    const lvm = cases[1]?.[2] ?? "";
    expect(lvm).toContain("<name>vg_vm</name>");
    expect(lvm).toContain('<device path="/dev/disk/by-id/ata-B"/>');
    expect(() => renderPoolXml({ name: "x", type: "dir" })).toThrow(/needs a path/);
    expect(() => renderDefaultNetworkXml({ name: "x", bridge: "b", subnet: "10.0.0.1" })).toThrow();
  });

  const tool = has("virt-xml-validate") && has("xmllint");
  if (!tool) it.skip("virt-xml-validate: libvirt-clients or libxml2-utils is not installed", () => {});
  for (const [name, schema, xml] of cases) {
    it.skipIf(!tool)(`virt-xml-validate ${schema}: ${name}`, () => {
      const file = path.join(dir, `${name.replace(/\W+/g, "-")}.xml`);
      writeFileSync(file, xml);
      const r = run(["virt-xml-validate", file, schema]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
      expect(r.stderr + r.stdout).toMatch(/ validates$/m);
    });
  }

  it.skipIf(!tool)("virt-xml-validate really rejects (an unknown forward mode fails)", () => {
    const file = path.join(dir, "bad.xml");
    writeFileSync(file, '<network><name>x</name><forward mode="bogus"/></network>');
    expect(run(["virt-xml-validate", file, "network"]).code).not.toBe(0);
  });
});
