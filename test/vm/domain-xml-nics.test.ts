// The NICs of a domain on virtual networks, one golden file per case (test/vm/golden-nics/, reviewed):
// an OVS access port, an OVS trunk, an OVS port with no VLAN settings, beside a libvirt network.
// Each whole domain is also checked against libvirt's RelaxNG schema (virt-xml-validate).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type DomainSpec, renderDomainXml, type VmNic } from "../../src/vm/domain-xml.js";

const validator = spawnSync("virt-xml-validate", ["--help"]).status !== null;
const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-nicxml-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base: DomainSpec = {
  name: "web-1",
  domainType: "qemu",
  vcpus: 2,
  memoryMiB: 1024,
  disk: { path: "/var/lib/kvmstrap/vms/web-1/disk.qcow2", format: "qcow2" },
  nics: [],
  serialLog: "/var/lib/kvmstrap/vms/web-1/serial.log",
};

const CASES: Record<string, VmNic[]> = {
  "ovs-access": [{ kind: "ovs", bridge: "ovsbr0", vlan: 10, mac: "52:54:00:00:00:10" }],
  "ovs-trunk": [{ kind: "ovs", bridge: "ovsbr0", trunk: [10, 20, 4094], mac: "52:54:00:00:00:11" }],
  "ovs-untagged-and-nat": [
    { kind: "ovs", bridge: "ovsbr0", mac: "52:54:00:00:00:12" },
    { kind: "network", network: "natnet", mac: "52:54:00:00:00:13" },
  ],
};

/** The <interface> elements only: the rest of the domain has its own tests. */
const interfaces = (xml: string) =>
  `${(xml.match(/ {4}<interface[\s\S]*?<\/interface>/g) ?? []).join("\n")}\n`;

describe("domain XML for NICs on virtual networks", () => {
  for (const [name, nics] of Object.entries(CASES)) {
    it(name, async () => {
      const xml = renderDomainXml({ ...base, nics });
      await expect(interfaces(xml)).toMatchFileSnapshot(`./golden-nics/${name}.xml`);
      if (!validator) return;
      const f = path.join(dir, `${name}.xml`);
      writeFileSync(f, xml);
      const r = spawnSync("virt-xml-validate", [f, "domain"], { encoding: "utf8" });
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    });
  }
  it.skipIf(validator)(
    "virt-xml-validate is missing (libvirt-clients): the schema checks did not run",
    () => {},
  );
});
