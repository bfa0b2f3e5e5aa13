// What detection cannot see it must call unknown, and what it sees it must name for what it is:
// VFs are VFs, a PF with VFs in view is SR-IOV capable, the architecture is the machine's, no route
// table means the default route is unknown, and firmware mode follows efivarfs or an ESP mount.
import { afterAll, describe, expect, it } from "vitest";
import { runChecks } from "../../src/checks/index.js";
import { detectCpu } from "../../src/detect/cpu.js";
import { detectFirmware } from "../../src/detect/firmware.js";
import { detectHost } from "../../src/detect/index.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import { buildSriovHost, SRIOV, SysfsFixture } from "../helpers/sysfs-fixture.js";

const fixtures: SysfsFixture[] = [];
const fixture = () => {
  const fx = new SysfsFixture();
  fixtures.push(fx);
  return fx;
};
afterAll(() => {
  for (const fx of fixtures) fx.cleanup();
});
const ctxOf = (fx: SysfsFixture): DetectContext => ({ fs: fx.fs(), warnings: [] });

describe("SR-IOV functions", () => {
  it("VFs are kind vf with their PF, not physical NICs", async () => {
    const fx = buildSriovHost(fixture());
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    const byName = new Map(r.nics.map((n) => [n.name, n]));
    expect(byName.get(SRIOV.pfName)?.kind).toBe("physical");
    for (const vf of SRIOV.vfNames) {
      expect(byName.get(vf)?.kind).toBe("vf");
      expect(byName.get(vf)?.physfn).toBe(SRIOV.pf);
    }
    const nicCheck = runChecks(r).find((c) => c.id === "net.nics");
    expect(nicCheck?.reason).toMatch(/^1 physical NIC: enp3s0f0/);
    expect(nicCheck?.reason).toMatch(/2 SR-IOV VFs/);
  });

  it("a PF whose VFs are in view is SR-IOV capable even without sriov_totalvfs (total unknown)", async () => {
    const fx = buildSriovHost(fixture());
    const pf = fx.pciPath(SRIOV.pf);
    fx.remove(`${pf}/sriov_totalvfs`).remove(`${pf}/sriov_numvfs`);
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    const dev = r.pci.find((d) => d.address === SRIOV.pf);
    expect(dev?.sriov).toEqual({ totalVfs: 2, numVfs: 2, vfs: [...SRIOV.vfs], totalVfsKnown: false });
    expect(r.warnings.some((w) => w.path === `${pf}/sriov_totalvfs` && /unknown/.test(w.message))).toBe(true);
    const check = runChecks(r).find((c) => c.id === "sriov.capable");
    expect(check?.reason).toMatch(/at least 2 VFs \(total unknown/);
  });
});

describe("the default route", () => {
  it("with no route table captured, every NIC's default route is unknown, never false", async () => {
    const fx = buildSriovHost(fixture());
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    expect(r.nics.length).toBeGreaterThan(0);
    expect(r.nics.every((n) => n.defaultRoute === "unknown" && !n.management)).toBe(true);
    expect(r.warnings.some((w) => w.path === "/proc/net/route" && /unknown/.test(w.message))).toBe(true);
  });

  it("with a table, the NIC of the default route says yes and the others no; IPv6-only works too", async () => {
    const fx = buildSriovHost(fixture());
    fx.routes([{ iface: SRIOV.pfName }]);
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    const pf = r.nics.find((n) => n.name === SRIOV.pfName);
    expect(pf).toMatchObject({ management: true, defaultRoute: "yes" });
    expect(r.nics.filter((n) => n.name !== SRIOV.pfName).every((n) => n.defaultRoute === "no")).toBe(true);

    const v6 = buildSriovHost(fixture());
    v6.file(
      "/proc/net/ipv6_route",
      [
        `00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003 ${SRIOV.pfName}`,
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200 lo",
      ].join("\n"),
    );
    const r6 = await detectHost({ fs: v6.fs(), pciIds: null });
    expect(r6.nics.find((n) => n.name === SRIOV.pfName)).toMatchObject({
      management: true,
      defaultRoute: "yes",
    });
  });
});

// /proc/cpuinfo as the kernel prints it on an Ampere Altra (arch/arm64/kernel/cpuinfo.c) and on an
// IBM z15 LPAR (arch/s390/kernel/processor.c), two CPUs each.
const ARM64_CPUINFO = `processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1
`;
const S390X_CPUINFO = `vendor_id       : IBM/S390
# processors    : 2
bogomips per cpu: 3241.00
max thread id   : 1
features\t: esan3 zarch stfle msa ldisp eimm dfp edat etf3eh highgprs te vx vxd vxe gs vxe2 vxp sort dflt sie
facilities      : 0 1 2 3 4 6 7 8 9 10 12 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 30 31 32 33 34 35
cache0          : level=1 type=Data scope=Private size=128K line_size=256 associativity=8
processor 0: version = 00,  identification = 0B2C18,  machine = 8561
processor 1: version = 00,  identification = 0B2C18,  machine = 8561

cpu number      : 0
physical id     : 0
core id         : 0
cpu MHz dynamic : 5200
cpu MHz static  : 5200

cpu number      : 1
physical id     : 0
core id         : 0
cpu MHz dynamic : 5200
cpu MHz static  : 5200
`;

describe("the CPU and architecture come from the machine", () => {
  it("aarch64: architecture, vendor and part from cpuinfo; no x86 flags or advice", async () => {
    const fx = fixture().file("/proc/cpuinfo", ARM64_CPUINFO).dir("/sys/module/kvm");
    const cpu = await detectCpu(ctxOf(fx));
    expect(cpu).toMatchObject({
      architecture: "aarch64",
      vendor: "ARM",
      model: "Neoverse-N1",
      threads: 2,
      virt: null,
      hypervisor: false,
    });
    expect(cpu.flags).toContain("asimd");
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    const text = JSON.stringify(runChecks(r));
    expect(text).not.toMatch(/VT-x|AMD-V|vmx|svm|kvm_intel|kvm_amd|intel_iommu|amd_iommu|MSR/);
    expect(runChecks(r).find((c) => c.id === "cpu.virt")?.reason).toMatch(/EL2/);
  });

  it("s390x: architecture, machine type and SIE from its own cpuinfo format", async () => {
    const fx = fixture().file("/proc/cpuinfo", S390X_CPUINFO);
    const cpu = await detectCpu(ctxOf(fx));
    expect(cpu).toMatchObject({
      architecture: "s390x",
      vendor: "IBM",
      model: "IBM z15",
      threads: 2,
      virt: null,
    });
    expect(cpu.flags).toContain("sie");
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    const virt = runChecks(r).find((c) => c.id === "cpu.virt");
    expect(virt).toMatchObject({ level: "pass" });
    expect(virt?.reason).toMatch(/SIE/);
    expect(JSON.stringify(runChecks(r))).not.toMatch(/VT-x|AMD-V|kvm_intel|intel_iommu|BIOS/);
  });

  it("the kernel's own word wins: /proc/sys/kernel/arch", async () => {
    const fx = fixture().file("/proc/cpuinfo", ARM64_CPUINFO).file("/proc/sys/kernel/arch", "aarch64\n");
    const cpu = await detectCpu(ctxOf(fx));
    expect(cpu.architecture).toBe("aarch64");
    expect(cpu.sources.architecture).toBe("/proc/sys/kernel/arch");
  });

  it("with nothing captured, the architecture is unknown, not x86_64", async () => {
    const cpu = await detectCpu(ctxOf(fixture().dir("/proc")));
    expect(cpu.architecture).toBe("unknown");
  });

  it("an arm64 guest (DMI says QEMU) gets guest advice, not firmware advice", async () => {
    const fx = fixture()
      .file("/proc/cpuinfo", ARM64_CPUINFO)
      .file("/sys/class/dmi/id/sys_vendor", "QEMU\n")
      .dir("/dev");
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    expect(r.cpu.hypervisor).toBe(true);
    const virt = runChecks(r).find((c) => c.id === "cpu.virt");
    expect(virt?.remediation).toMatch(/outer host/);
  });
});

describe("advice for a guest points at its host", () => {
  it("an x86 guest whose MSR reads 'locked, VMX off' is told to enable nesting, not to enter a BIOS", async () => {
    const fx = fixture().file(
      "/proc/cpuinfo",
      "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Xeon\nflags\t\t: fpu lm hypervisor\n\n",
    );
    // IA32_FEATURE_CONTROL (0x3a) = 1: locked, VMX outside SMX off (what KVM shows a guest without nesting).
    const msr = Buffer.alloc(0x3a + 8);
    msr[0x3a] = 1;
    fx.file("/dev/cpu/0/msr", msr.toString("latin1"));
    const r = await detectHost({ fs: fx.fs(), pciIds: null });
    expect(r.cpu.firmwareVirt).toBe("locked-off");
    const virt = runChecks(r).find((c) => c.id === "cpu.virt");
    expect(virt?.remediation).toMatch(/outer hypervisor/);
    expect(virt?.remediation).not.toMatch(/BIOS/);
  });
});

describe("firmware mode", () => {
  it("is UEFI from an efivarfs or ESP mount when /sys/firmware was not captured", async () => {
    const efivarfs = fixture().file(
      "/proc/mounts",
      "efivarfs /sys/firmware/efi/efivars efivarfs rw,nosuid,nodev,noexec,relatime 0 0\n",
    );
    expect((await detectFirmware(ctxOf(efivarfs))).mode).toBe("uefi");
    const esp = fixture().file("/proc/mounts", "/dev/nvme0n1p1 /boot/efi vfat rw,relatime 0 0\n");
    const fw = await detectFirmware(ctxOf(esp));
    expect(fw.mode).toBe("uefi");
    expect(fw.sources.mode).toBe("/proc/mounts");
  });

  it("is BIOS only when a captured /sys/firmware lists no efi, and otherwise unknown", async () => {
    const bios = fixture().dir("/sys/firmware/acpi").dir("/sys/firmware/dmi");
    expect((await detectFirmware(ctxOf(bios))).mode).toBe("bios");
    const empty = fixture().dir("/sys/firmware").file("/proc/mounts", "/dev/sda1 / ext4 rw 0 0\n");
    expect((await detectFirmware(ctxOf(empty))).mode).toBe("unknown");
    const uefi = fixture().dir("/sys/firmware/efi/efivars").dir("/sys/firmware/acpi");
    expect((await detectFirmware(ctxOf(uefi))).mode).toBe("uefi");
  });
});
