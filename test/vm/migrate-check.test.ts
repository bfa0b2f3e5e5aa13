// The checks before a live migration (src/vm/migrate-check.ts), against host reports detected from
// the real-machine snapshots (read in place) and from sysfs fixtures built per case: each case names
// what the VM needs and what the target lacks, and the reason the check must give.
import { beforeAll, describe, expect, it } from "vitest";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import {
  type HostCpu,
  hostCpu,
  localDisks,
  type MigrationFacts,
  migrationRefusals,
  usableCpuModels,
} from "../../src/vm/migrate-check.js";
import { detectFixture } from "../answer/hosts.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { buildDmarBridgeHost, DMAR_BRIDGE, SysfsFixture } from "../helpers/sysfs-fixture.js";

const domain = (inner: string, memory = "<memory unit='KiB'>1048576</memory>") =>
  `<domain type='kvm'><name>web</name>${memory}<devices>
    <disk type='file' device='disk'><source file='/var/lib/libvirt/images/web.qcow2'/><target dev='vda' bus='virtio'/></disk>
    <disk type='file' device='cdrom'><source file='/var/lib/kvmstrap/vms/web/seed.iso'/><target dev='sda' bus='sata'/></disk>
  </devices>${inner}</domain>`;
const withDevices = (devs: string) => domain("").replace("</devices>", `${devs}</devices>`);

const SKYLAKE: HostCpu = { vendor: "Intel", model: "Skylake-Server-IBRS", features: ["vmx", "pdpe1gb"] };

function facts(
  report: HostReport,
  xml: string,
  over: Partial<MigrationFacts["target"]> = {},
): MigrationFacts {
  return {
    vm: "web",
    domainXml: xml,
    sourceHostname: "node-a",
    sourceHostCpu: SKYLAKE,
    targetReport: report,
    target: {
      hostname: "node-b",
      hostCpu: SKYLAKE,
      usableCpuModels: ["qemu64", "Haswell-noTSX", "Skylake-Server-IBRS"],
      activeNetworks: ["default"],
      ...over,
    },
  };
}

describe.skipIf(!sharedHostsAvailable)(`against real machines' reports (${SKIP_REASON})`, () => {
  let amd: HostReport;
  let laptop: HostReport;
  let guest: HostReport;
  beforeAll(async () => {
    const detect = (root: string) =>
      detectHost({ fs: new RootedHostFs(root), probe: { mode: "never" }, pciIds: null });
    [amd, laptop, guest] = await Promise.all([
      detect(sharedHostRoot("amd-ryzen-1600-desktop")),
      detect(sharedHostRoot("intel-i7-1270p-laptop")),
      detect(sharedHostRoot("kvm-guest-skylake-offline-cpus")),
    ]);
  }, 60_000);

  it("a plain VM (disks only, no CPU element) may go to any of them", () => {
    for (const r of [amd, laptop, guest]) expect(migrationRefusals(facts(r, domain("")))).toEqual([]);
  });

  it("a NIC on a bridge the target lacks, or on a physical NIC of that name, is refused", () => {
    const br0 = withDevices("<interface type='bridge'><source bridge='br0'/></interface>");
    expect(migrationRefusals(facts(amd, br0))).toEqual(['network: bridge "br0" does not exist on node-b']);
    // enp3s0 exists on the Ryzen, but as a physical NIC: not a bridge a tap can join.
    const phys = withDevices("<interface type='bridge'><source bridge='enp3s0'/></interface>");
    expect(migrationRefusals(facts(amd, phys))).toEqual([
      'network: bridge "enp3s0" does not exist on node-b',
    ]);
  });

  it("an Open vSwitch bridge and a libvirt network the target lacks are refused", () => {
    const ovs = withDevices(
      "<interface type='bridge'><source bridge='ovsbr0'/><virtualport type='openvswitch'/><vlan><tag id='42'/></vlan></interface><interface type='network'><source network='storage'/></interface>",
    );
    expect(migrationRefusals(facts(amd, ovs))).toEqual([
      'network: Open vSwitch bridge "ovsbr0" does not exist on node-b',
      'network: libvirt network "storage" is not active on node-b',
    ]);
  });

  it("hugepages: 1 GiB of 2 MiB pages on a target with none free", () => {
    const xml = domain(
      "<memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>",
    );
    expect(migrationRefusals(facts(laptop, xml))).toEqual([
      "hugepages: the VM needs 512 free 2048 KiB pages; node-b has 0",
    ]);
  });

  it("a PCI host device: never live-migrated, and said when the target has no such device", () => {
    const gpu = withDevices(
      "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x00' slot='0x02' function='0x0'/></source></hostdev>",
    );
    const [onLaptop] = migrationRefusals(facts(laptop, gpu));
    expect(onLaptop).toMatch(
      /^passthrough: PCI device 0000:00:02\.0 is assigned .* cannot be live-migrated \(detach it first\)$/,
    );
    expect(migrationRefusals(facts(guest, gpu))[0]).toContain("the target has no device at 0000:00:02.0");
  });

  it("CPU: a model the target cannot run, host-passthrough between different CPUs, the same host", () => {
    const custom = domain(
      "<cpu mode='custom' match='exact'><model fallback='forbid'>Icelake-Server</model></cpu>",
    );
    expect(migrationRefusals(facts(amd, custom))).toEqual([
      'CPU: model "Icelake-Server" is not usable on node-b (not in its domain capabilities)',
    ]);
    expect(migrationRefusals(facts(amd, custom, { usableCpuModels: ["Icelake-Server"] }))).toEqual([]);
    const pass = domain("<cpu mode='host-passthrough'/>");
    // The same vendor, another model.
    const icelake = { vendor: "Intel", model: "Icelake-Server", features: ["vmx"] };
    expect(migrationRefusals(facts(laptop, pass, { hostCpu: icelake }))).toEqual([
      'CPU: the VM uses host-passthrough on a "Skylake-Server-IBRS" host CPU; node-b\'s is "Icelake-Server" (use a named CPU model to migrate between different CPUs)',
    ]);
    expect(migrationRefusals(facts(laptop, pass))).toEqual([]);
    expect(migrationRefusals(facts(amd, domain(""), { hostname: "node-a" }))).toEqual([
      "target: node-b is the host the VM runs on".replace("node-b", "node-a"),
    ]);
  });

  it("host-passthrough from an Intel host to the Ryzen: refused for the vendor, also when libvirt does not name it", () => {
    const pass = domain("<cpu mode='host-passthrough' check='none'/>");
    const epyc = { vendor: "AMD", model: "EPYC", features: ["svm"] };
    const reason =
      "CPU: the VM uses host-passthrough on an Intel host CPU; node-b's is AMD (use a named CPU model to migrate between different CPUs)";
    expect(migrationRefusals(facts(amd, pass, { hostCpu: epyc }))).toEqual([reason]);
    // The target's libvirtd names a model but no vendor: the report's AuthenticAMD says it.
    expect(amd.cpu.vendor).toBe("AuthenticAMD");
    const noVendor = { vendor: null, model: "EPYC", features: [] };
    expect(migrationRefusals(facts(amd, pass, { hostCpu: noVendor }))).toEqual([reason]);
    const max = domain("<cpu mode='maximum'/>");
    expect(migrationRefusals(facts(amd, max, { hostCpu: epyc }))[0]).toMatch(
      /^CPU: the VM uses maximum on an Intel/,
    );
  });

  it("host-passthrough to the same model lacking a feature the source's host CPU has", () => {
    const pass = domain("<cpu mode='host-passthrough'/>");
    const fewer = { ...SKYLAKE, features: ["vmx"] };
    expect(migrationRefusals(facts(guest, pass, { hostCpu: fewer }))).toEqual([
      "CPU: the VM uses host-passthrough and node-b's host CPU lacks pdpe1gb (use a named CPU model to migrate between different CPUs)",
    ]);
    expect(migrationRefusals(facts(guest, pass, { hostCpu: null }))[0]).toMatch(
      /^CPU: the VM uses host-passthrough and a host CPU is unknown/,
    );
  });

  it("USB, mediated and SR-IOV VF (interface type hostdev) passthrough are refused", () => {
    const devs = withDevices(
      `<hostdev mode='subsystem' type='usb'><source><vendor id='0x046d'/><product id='0xc52b'/></source></hostdev>
       <hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>
       <interface type='hostdev' managed='yes'><source><address type='pci' domain='0x0000' bus='0x3b' slot='0x02' function='0x1'/></source></interface>`,
    );
    expect(migrationRefusals(facts(laptop, devs))).toEqual([
      "passthrough: USB device 046d:c52b is assigned to the VM and a VM with a host device cannot be live-migrated (detach it first)",
      "passthrough: mediated device c2177883-f1bb-47f0-914d-32a22e3a8804 is assigned to the VM and a VM with a host device cannot be live-migrated (detach it first)",
      "passthrough: NIC on PCI device 0000:3b:02.1 (type hostdev, an SR-IOV VF) and a VM with a host device cannot be live-migrated (detach it first); the target has no device at 0000:3b:02.1",
    ]);
  });

  it("a macvtap (direct) NIC on a device the target lacks; one it has passes", () => {
    const direct = (dev: string) =>
      withDevices(`<interface type='direct'><source dev='${dev}' mode='bridge'/></interface>`);
    expect(migrationRefusals(facts(amd, direct("ens9f0")))).toEqual([
      'network: interface "ens9f0" (the NIC\'s macvtap device) does not exist on node-b',
    ]);
    expect(migrationRefusals(facts(amd, direct("enp3s0")))).toEqual([]);
  });

  it("hugepages of a size the target does not offer", () => {
    const xml = domain(
      "<memoryBacking><hugepages><page size='1' unit='GiB'/></hugepages></memoryBacking>",
      "<memory unit='GiB'>4</memory>",
    );
    const [reason] = migrationRefusals(facts(laptop, xml));
    expect(reason).toMatch(/^hugepages: the VM uses 1048576 KiB pages; node-b has none of that size \(/);
  });
});

describe("against sysfs fixtures", () => {
  it("a bridge the target has is accepted; a VLAN on it needs bridge VLAN filtering", async () => {
    const fx = buildDmarBridgeHost();
    const report = await detectFixture(fx);
    fx.cleanup();
    const nic = (vlan: string) =>
      withDevices(`<interface type='bridge'><source bridge='${DMAR_BRIDGE.bridge}'/>${vlan}</interface>`);
    expect(migrationRefusals(facts(report, nic("")))).toEqual([]);
    const reasons = migrationRefusals(facts(report, nic("<vlan><tag id='10'/></vlan>")));
    expect(reasons).toEqual([
      `network: VLAN 10 on bridge "${DMAR_BRIDGE.bridge}" needs bridge VLAN filtering, which node-b's kernel does not offer`,
    ]);
  });

  it("hugepages the target has free are enough", async () => {
    const fx = new SysfsFixture();
    fx.file("/proc/meminfo", "MemTotal:        8000000 kB\nHugepagesize:       2048 kB\n");
    fx.file("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "600\n");
    fx.file("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "512\n");
    const report = await detectFixture(fx);
    fx.cleanup();
    const xml = domain("<memoryBacking><hugepages/></memoryBacking>");
    expect(report.memory.hugepages["2048kB"]?.free).toBe(512);
    expect(report.memory.hugepageSizeKiB).toBe(2048);
    expect(migrationRefusals(facts(report, xml))).toEqual([]);
    const more = domain("<memoryBacking><hugepages/></memoryBacking>", "<memory unit='GiB'>2</memory>");
    expect(migrationRefusals(facts(report, more))).toEqual([
      "hugepages: the VM needs 1024 free 2048 KiB pages; node-b has 512",
    ]);
  });
});

describe("reading libvirt's XML", () => {
  it("file disks to copy, not the cloud-init CD-ROM", () => {
    expect(localDisks(domain(""))).toEqual([{ target: "vda", path: "/var/lib/libvirt/images/web.qcow2" }]);
  });

  it("usable custom CPU models from domcapabilities, the host CPU model from capabilities", () => {
    const domcaps = `<domainCapabilities><cpu><mode name='host-model' supported='yes'><model fallback='forbid'>Skylake-Client-IBRS</model></mode>
      <mode name='custom' supported='yes'><model usable='yes' vendor='unknown'>qemu64</model><model usable='no' vendor='Intel'>Icelake-Server</model><model usable='yes' vendor='AMD'>486</model></mode></cpu></domainCapabilities>`;
    expect(usableCpuModels(domcaps)).toEqual(["qemu64", "486"]);
    expect(
      hostCpu(
        "<capabilities><host><uuid>x</uuid><cpu><arch>x86_64</arch><model>Broadwell-noTSX-IBRS</model><vendor>Intel</vendor><feature name='vme'/><feature name='pdpe1gb'/></cpu></host></capabilities>",
      ),
    ).toEqual({ vendor: "Intel", model: "Broadwell-noTSX-IBRS", features: ["vme", "pdpe1gb"] });
    expect(hostCpu("<capabilities><host><uuid>x</uuid></host></capabilities>")).toBeNull();
    // Only the host's <cpu> counts, not a guest section's CPU selection after it.
    expect(
      hostCpu(
        "<capabilities><host><cpu mode='x'><model>EPYC</model><vendor>AMD</vendor></cpu></host><guest><cpuselection/><arch name='x86_64'><machine>pc</machine></arch></guest></capabilities>",
      ),
    ).toEqual({ vendor: "AMD", model: "EPYC", features: [] });
  });
});
