import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cpuVirtCheck } from "../../src/checks/virtualization.js";
import { detectCpu } from "../../src/detect/cpu.js";
import { detectHost } from "../../src/detect/index.js";
import { detectMemory } from "../../src/detect/memory.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";

const ctxFor = (root: string): DetectContext => ({ fs: new RootedHostFs(root), warnings: [] });

describe.skipIf(!sharedHostsAvailable)("CPU and memory on the shared real-machine snapshots", () => {
  it("reads the Ryzen 1600 as one socket, 6 cores, 12 threads with AMD-V, NPT and 1G pages", async () => {
    const cpu = await detectCpu(ctxFor(sharedHostRoot("amd-ryzen-1600-desktop")));
    expect(cpu).toMatchObject({
      vendor: "AuthenticAMD",
      model: "AMD Ryzen 5 1600 Six-Core Processor",
      sockets: 1,
      cores: 6,
      threads: 12,
      virt: "svm",
      secondLevelPaging: "yes",
      pdpe1gb: true,
      hypervisor: false,
      firmwareVirt: "unknown",
    });
    expect(cpu.sources.flags).toBe("/proc/cpuinfo");
  });

  it("reads the i7-1270P laptop's 12 cores / 16 threads with VT-x and EPT", async () => {
    const cpu = await detectCpu(ctxFor(sharedHostRoot("intel-i7-1270p-laptop")));
    expect(cpu).toMatchObject({
      vendor: "GenuineIntel",
      cores: 12,
      threads: 16,
      virt: "vmx",
      secondLevelPaging: "yes",
    });
    expect(cpu.hypervisor).toBe(false);
  });

  it("sees the Xeon 'server' is a guest with nested VT-x exposed (hypervisor flag and vmx)", async () => {
    const cpu = await detectCpu(ctxFor(sharedHostRoot("intel-xeon-gold-5218r-server")));
    expect(cpu).toMatchObject({ hypervisor: true, virt: "vmx", sockets: 2, threads: 2 });
    expect(cpu.model).toContain("Xeon(R) Gold 5218R");
  });

  it("reports offline CPUs of the kvm guest", async () => {
    const cpu = await detectCpu(ctxFor(sharedHostRoot("kvm-guest-skylake-offline-cpus")));
    expect(cpu.onlineCpus).toBe("0-1");
    expect(cpu.offlineCpus).toBe("2-3");
  });

  it("reads memory totals and NUMA node 0 with its CPUs and per-node hugepages", async () => {
    const amd = await detectMemory(ctxFor(sharedHostRoot("amd-ryzen-1600-desktop")));
    expect(amd.totalKiB).toBe(32777916);
    expect(amd.numa.map((n) => [n.id, n.cpus])).toEqual([[0, "0-11"]]);
    const laptop = await detectMemory(ctxFor(sharedHostRoot("intel-i7-1270p-laptop")));
    expect(laptop.totalKiB).toBe(32542668);
    expect(laptop.numa[0]?.hugepages).toEqual({
      "1048576kB": { total: 0, free: 0 },
      "2048kB": { total: 0, free: 0 },
    });
  });
});
if (!sharedHostsAvailable) it.skip(`shared snapshots: ${SKIP_REASON}`, () => {});

/** A minimal host whose firmware locked VT-x/AMD-V off: no vmx/svm in cpuinfo, and the MSR says so. */
function lockedOffRoot(vendor: "GenuineIntel" | "AuthenticAMD"): string {
  const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-lockedoff-"));
  mkdirSync(path.join(root, "proc"), { recursive: true });
  mkdirSync(path.join(root, "dev/cpu/0"), { recursive: true });
  const flags = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge lm pdpe1gb";
  writeFileSync(
    path.join(root, "proc/cpuinfo"),
    `processor\t: 0\nvendor_id\t: ${vendor}\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: ${flags}\n\n`,
  );
  // /dev/cpu/N/msr returns a register's 8 bytes at the register's number as file offset; a sparse
  // file with those bytes at that offset reads the same through the port.
  const value = Buffer.alloc(8);
  // Intel IA32_FEATURE_CONTROL: lock (bit 0) set, VMX outside SMX (bit 2) clear.
  // AMD VM_CR: LOCK (bit 3) and SVMDIS (bit 4) set.
  value.writeBigUInt64LE(vendor === "GenuineIntel" ? 1n : 0x18n, 0);
  const h = openSync(path.join(root, "dev/cpu/0/msr"), "w");
  writeSync(h, value, 0, 8, vendor === "GenuineIntel" ? 0x3a : 0xc0010114);
  closeSync(h);
  return root;
}

describe("VT-x/AMD-V locked off in firmware (synthetic MSR fixtures)", () => {
  it("tells 'disabled in firmware' from 'unsupported' on Intel through IA32_FEATURE_CONTROL", async () => {
    const root = lockedOffRoot("GenuineIntel");
    const cpu = await detectCpu(ctxFor(root));
    expect(cpu.virt).toBeNull();
    expect(cpu.firmwareVirt).toBe("locked-off");
    expect(cpu.sources.firmwareVirt).toBe("/dev/cpu/0/msr@0x3a");
    const report = await detectHost({ fs: new RootedHostFs(root), pciIds: null });
    const c = cpuVirtCheck(report);
    expect(c).toMatchObject({ level: "fail", state: "disabled-in-firmware", reboot: true });
    expect(c.remediation).toContain("Intel Virtualization Technology");
  });

  it("reads AMD's VM_CR.SVMDIS as disabled in firmware", async () => {
    const cpu = await detectCpu(ctxFor(lockedOffRoot("AuthenticAMD")));
    expect(cpu.firmwareVirt).toBe("locked-off");
    expect(cpu.firmwareVirtDetail).toContain("SVMDIS");
  });

  it("says unknown, not unsupported, when the MSR cannot be read and vmx is absent", async () => {
    const root = lockedOffRoot("GenuineIntel");
    rmSync(path.join(root, "dev"), { recursive: true });
    const report = await detectHost({ fs: new RootedHostFs(root), pciIds: null });
    expect(report.cpu.firmwareVirt).toBe("unknown");
    expect(cpuVirtCheck(report)).toMatchObject({ level: "fail", state: "unknown" });
  });
});

describe("malformed CPU and memory files", () => {
  it("turns garbage into unknown facts with a warning naming the file, never a throw", async () => {
    const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-garbage-"));
    mkdirSync(path.join(root, "proc"));
    mkdirSync(path.join(root, "sys/kernel/mm/ksm"), { recursive: true });
    writeFileSync(path.join(root, "proc/cpuinfo"), Buffer.from([0, 1, 2, 255, 254, 10, 10]));
    writeFileSync(path.join(root, "proc/meminfo"), "this is not meminfo\n");
    writeFileSync(path.join(root, "sys/kernel/mm/ksm/pages_sharing"), "lots\n");
    const report = await detectHost({ fs: new RootedHostFs(root), pciIds: null });
    expect(report.cpu.vendor).toBeNull();
    expect(report.memory.totalKiB).toBeNull();
    const paths = report.warnings.map((w) => w.path);
    expect(paths).toEqual(
      expect.arrayContaining(["/proc/cpuinfo", "/proc/meminfo", "/sys/kernel/mm/ksm/pages_sharing"]),
    );
  });
});
