import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  type NetworkDisk,
  renderNetworkDiskXml,
  renderPoolVolumeDiskXml,
  secretUuidFor,
} from "../../src/vm/network-disk.js";

const validator = spawnSync("virt-xml-validate", ["--help"]).status !== null;
const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-netdisk-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The disk inside the smallest domain libvirt's RelaxNG schema accepts. */
function validate(disk: string): { ok: boolean; out: string } {
  const xml = `<domain type="qemu">\n  <name>t</name>\n  <memory>65536</memory>\n  <os>\n    <type arch="x86_64" machine="q35">hvm</type>\n  </os>\n  <devices>\n${disk}\n  </devices>\n</domain>\n`;
  const f = path.join(dir, `d-${Math.random().toString(36).slice(2)}.xml`);
  writeFileSync(f, xml);
  const r = spawnSync("virt-xml-validate", [f, "domain"], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const uuid = secretUuidFor("rack1", "ceph1");

const cases: Record<string, NetworkDisk> = {
  nfs: { protocol: "nfs", name: "/srv/vms/web-1.raw", hosts: [{ name: "10.0.0.5" }], target: "vda" },
  rbd: {
    protocol: "rbd",
    name: "vms/web-1",
    hosts: [
      { name: "10.0.0.1", port: 6789 },
      { name: "10.0.0.2", port: 6789 },
    ],
    auth: { username: "libvirt", secretType: "ceph", secretUuid: uuid },
    target: "vda",
  },
  iscsi: {
    protocol: "iscsi",
    name: "iqn.2026-12.org.example:store1/1",
    hosts: [{ name: "10.0.0.9", port: 3260 }],
    auth: { username: "chapuser", secretType: "iscsi", secretUuid: uuid },
    initiator: "iqn.2026-12.org.example:rack1",
    target: "vdb",
    readonly: true,
  },
};

describe("network disks", () => {
  it("nfs: protocol, path and server, no secret", () => {
    expect(renderNetworkDiskXml(cases.nfs as NetworkDisk)).toBe(
      [
        '    <disk type="network" device="disk">',
        '      <driver name="qemu" type="raw" cache="none"/>',
        '      <source protocol="nfs" name="/srv/vms/web-1.raw">',
        '        <host name="10.0.0.5"/>',
        '        <identity user="root" group="root"/>',
        "      </source>",
        '      <target dev="vda" bus="virtio"/>',
        "    </disk>",
      ].join("\n"),
    );
  });

  it("rbd: every monitor and the cephx secret by uuid only", () => {
    const xml = renderNetworkDiskXml(cases.rbd as NetworkDisk);
    expect(xml).toContain(`<auth username="libvirt">\n        <secret type="ceph" uuid="${uuid}"/>`);
    expect(xml).toContain('<source protocol="rbd" name="vms/web-1">');
    expect(xml.match(/<host name="10\.0\.0\.\d" port="6789"\/>/g)).toHaveLength(2);
    expect(xml).not.toMatch(/usage=|value=/);
  });

  it("iscsi: target IQN/LUN, CHAP secret, initiator IQN, read-only", () => {
    const xml = renderNetworkDiskXml(cases.iscsi as NetworkDisk);
    expect(xml).toContain('<source protocol="iscsi" name="iqn.2026-12.org.example:store1/1">');
    expect(xml).toContain(`<secret type="iscsi" uuid="${uuid}"/>`);
    expect(xml).toContain('<iqn name="iqn.2026-12.org.example:rack1"/>');
    expect(xml).toContain("<readonly/>");
  });

  it("escapes what it writes", () => {
    const xml = renderNetworkDiskXml({ ...(cases.nfs as NetworkDisk), name: `/srv/a"b&<c>.raw` });
    expect(xml).toContain('name="/srv/a&quot;b&amp;&lt;c&gt;.raw"');
  });

  it("refuses a secret that is not a uuid, a secret of the wrong kind, no host, a bad target", () => {
    const rbd = cases.rbd as NetworkDisk;
    const auth = rbd.auth as NonNullable<NetworkDisk["auth"]>;
    expect(() => renderNetworkDiskXml({ ...rbd, auth: { ...auth, secretUuid: "AQBkey==" } })).toThrow(
      /by its uuid/,
    );
    expect(() => renderNetworkDiskXml({ ...rbd, auth: { ...auth, secretType: "iscsi" } })).toThrow(
      /does not fit rbd/,
    );
    expect(() => renderNetworkDiskXml({ ...(cases.nfs as NetworkDisk), auth })).toThrow(/does not fit nfs/);
    expect(() => renderNetworkDiskXml({ ...rbd, hosts: [] })).toThrow(/at least one host/);
    expect(() => renderNetworkDiskXml({ ...rbd, target: "vda/../x" })).toThrow(/disk target/);
  });

  it("a pool volume by pool and volume name", () => {
    expect(renderPoolVolumeDiskXml({ pool: "san1", volume: "unit:0:0:1", target: "vda" })).toBe(
      [
        '    <disk type="volume" device="disk">',
        '      <driver name="qemu" type="raw" cache="none"/>',
        '      <source pool="san1" volume="unit:0:0:1"/>',
        '      <target dev="vda" bus="virtio"/>',
        "    </disk>",
      ].join("\n"),
    );
  });

  it("secret uuids: stable per cluster and store, distinct otherwise, uuid-shaped", () => {
    expect(secretUuidFor("rack1", "ceph1")).toBe(uuid);
    expect(secretUuidFor("rack1", "san1")).not.toBe(uuid);
    expect(secretUuidFor("rack2", "ceph1")).not.toBe(uuid);
    expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it.skipIf(!validator)("every case passes libvirt's domain schema (virt-xml-validate)", () => {
    for (const [name, d] of Object.entries(cases)) {
      const r = validate(renderNetworkDiskXml(d));
      expect(r.ok, `${name}: ${r.out}`).toBe(true);
    }
    const v = validate(renderPoolVolumeDiskXml({ pool: "san1", volume: "unit:0:0:1", target: "vda" }));
    expect(v.ok, v.out).toBe(true);
  });
});
