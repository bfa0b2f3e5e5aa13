import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { detectHost } from "../../src/detect/index.js";
import { type DomainSpec, renderDomainXml } from "../../src/vm/domain-xml.js";
import { placeVm } from "../../src/vm/placement.js";
import { SysfsFixture } from "../helpers/sysfs-fixture.js";

const validator = spawnSync("virt-xml-validate", ["--help"]).status !== null;
const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-domxml-"));
function validate(xml: string): { ok: boolean; out: string } {
  const f = path.join(dir, `d-${Math.random().toString(36).slice(2)}.xml`);
  writeFileSync(f, xml);
  const r = spawnSync("virt-xml-validate", [f, "domain"], { encoding: "utf8" });
  return { ok: r.status === 0, out: `${r.stdout}${r.stderr}` };
}

const base: DomainSpec = {
  name: "web-1",
  domainType: "qemu",
  vcpus: 2,
  memoryMiB: 1024,
  disk: { path: "/var/lib/kvmstrap/vms/web-1.qcow2", format: "qcow2" },
  seed: { path: "/var/lib/kvmstrap/vms/web-1-seed.iso" },
  nics: [{ kind: "network", network: "default" }],
  serialLog: "/var/log/kvmstrap/web-1.console.log",
};

/** Two NUMA nodes (CPUs 0-3 and 4-7), a GPU and its audio function on node 1. */
async function twoNodeHost() {
  const fx = new SysfsFixture();
  fx.file("/sys/devices/system/node/online", "0-1\n");
  fx.file("/sys/devices/system/node/node0/cpulist", "0-3\n").file(
    "/sys/devices/system/node/node0/meminfo",
    "Node 0 MemTotal:       16384000 kB\n",
  );
  fx.file("/sys/devices/system/node/node1/cpulist", "4-7\n").file(
    "/sys/devices/system/node/node1/meminfo",
    "Node 1 MemTotal:       16384000 kB\n",
  );
  fx.pci({
    address: "0000:81:00.0",
    vendor: "10de",
    device: "1b80",
    class: "030000",
    driver: "vfio-pci",
    numaNode: 1,
    iommuGroup: 40,
  });
  fx.pci({
    address: "0000:81:00.1",
    vendor: "10de",
    device: "10f0",
    class: "040300",
    driver: "vfio-pci",
    numaNode: 1,
    iommuGroup: 40,
  });
  return detectHost({ fs: fx.fs(), pciIds: null });
}

describe.skipIf(!validator)("domain XML passes libvirt's own schema (virt-xml-validate)", () => {
  it("a TCG guest with a qcow2 disk, a NoCloud seed, a NAT NIC, serial log and agent channel", () => {
    const xml = renderDomainXml(base);
    expect(validate(xml)).toEqual({ ok: true, out: expect.any(String) });
    expect(xml).toContain('<domain type="qemu">');
    expect(xml).toContain('<disk type="file" device="disk">');
    expect(xml).toContain('name="org.qemu.guest_agent.0"');
    expect(xml).not.toContain("host-passthrough");
  });
  it("a KVM guest: host-passthrough CPU, UEFI, hugepages, bridge + macvtap + VF NICs, a passed-through GPU", () => {
    const xml = renderDomainXml({
      ...base,
      domainType: "kvm",
      vcpus: 4,
      uefi: { loader: "/usr/share/OVMF/OVMF_CODE_4M.fd", nvram: "/var/lib/kvmstrap/vms/web-1_VARS.fd" },
      hugepages: true,
      nics: [
        { kind: "bridge", bridge: "br0", mac: "52:54:00:12:34:56" },
        { kind: "macvtap", dev: "enp3s0", mode: "bridge" },
        { kind: "hostdev-network", network: "enp3s0f0-vfs" },
      ],
      hostdevs: ["0000:81:00.0", "0000:81:00.1"],
    });
    const v = validate(xml);
    expect(v.out).not.toContain("fails to validate");
    expect(v.ok).toBe(true);
    expect(xml).toContain('<cpu mode="host-passthrough"');
    expect(xml).toContain('<driver name="vhost" queues="4"/>');
    expect(xml).toContain('<address domain="0x0000" bus="0x81" slot="0x00" function="0x1"/>');
  });
  it("the validator itself rejects a broken domain (so a pass means something)", () => {
    expect(validate('<domain type="bogus"><name>x</name></domain>').ok).toBe(false);
  });
  it("escapes names and paths, so a quote or ampersand cannot break the document", () => {
    const xml = renderDomainXml({ ...base, name: "a&b", disk: { path: '/tmp/x"y.qcow2', format: "qcow2" } });
    expect(validate(xml).ok).toBe(true);
    expect(xml).toContain("<name>a&amp;b</name>");
  });
});
if (!validator)
  it.skip("domain XML validation: virt-xml-validate (libvirt-clients) is not installed", () => {});

describe("vCPU pinning follows the NUMA node of the passed-through device", () => {
  it("pins to node 1's CPUs and memory for a GPU on node 1, node 0 when nothing ties the VM", async () => {
    const report = await twoNodeHost();
    expect(report.memory.numa.map((n) => [n.id, n.cpus])).toEqual([
      [0, "0-3"],
      [1, "4-7"],
    ]);
    const gpu = placeVm(report, ["0000:81:00.0"]);
    expect(gpu).toMatchObject({ node: 1, cpus: [4, 5, 6, 7] });
    expect(gpu.reason).toContain("nearest to 0000:81:00.0");
    const free = placeVm(report, []);
    expect(free).toMatchObject({ node: 0, cpus: [0, 1, 2, 3] });
    const xml = renderDomainXml({
      ...base,
      vcpus: 2,
      hostdevs: ["0000:81:00.0"],
      pinning: { cpus: gpu.cpus, node: gpu.node },
    });
    expect(xml).toContain('<vcpupin vcpu="0" cpuset="4"/>');
    expect(xml).toContain('<vcpupin vcpu="1" cpuset="5"/>');
    expect(xml).toContain('<memory mode="strict" nodeset="1"/>');
    if (validator) expect(validate(xml).ok).toBe(true);
  });
});
