import { describe, expect, it } from "vitest";
import { CHECK_IDS, runChecks, verdict } from "../../src/checks/index.js";
import type { Check } from "../../src/checks/types.js";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import {
  buildDmarBridgeHost,
  buildSriovHost,
  buildVfioGpuHost,
  SysfsFixture,
  VFIO,
} from "../helpers/sysfs-fixture.js";

const INTEL_CPUINFO = `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) E-2278G\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu vmx ept pdpe1gb lm\n\n`;

const reportOf = (root: string) => detectHost({ fs: new RootedHostFs(root), pciIds: null });
const byId = (checks: Check[]) => new Map(checks.map((c) => [c.id, c]));
const withCpu = (fx: SysfsFixture) => fx.file("/proc/cpuinfo", INTEL_CPUINFO);

describe("check invariants", () => {
  it("gives every check a unique stable id, a reason, and a remediation wherever it fails", async () => {
    const checks = runChecks(await reportOf(withCpu(buildDmarBridgeHost()).root));
    expect(checks.length).toBeGreaterThan(8);
    expect(new Set(checks.map((c) => c.id)).size).toBe(checks.length);
    for (const c of checks) {
      expect(c.id).toMatch(/^[a-z]+\.[a-z-]+$/);
      expect(c.reason.length).toBeGreaterThan(5);
      if (c.level === "fail") expect(c.remediation).toBeTruthy();
    }
  });
  it("runs only the sources of the ids asked for, and those give the same checks as a full run", async () => {
    const report = await reportOf(withCpu(buildDmarBridgeHost()).root);
    const all = runChecks(report);
    expect(all.every((c) => CHECK_IDS.includes(c.id))).toBe(true);
    for (const id of CHECK_IDS) {
      const some = runChecks(report, new Set([id]));
      expect(some.length).toBeLessThan(all.length);
      expect(some.find((c) => c.id === id)).toEqual(all.find((c) => c.id === id));
    }
  });
  it("derives the verdict from the worst level", () => {
    const c = (level: Check["level"]): Check => ({
      id: "x.y",
      title: "",
      level,
      state: "info",
      reason: "r",
      remediation: null,
      reboot: false,
      facts: [],
    });
    expect(verdict([c("pass"), c("note")])).toBe("ready");
    expect(verdict([c("pass"), c("warn")])).toBe("ready-with-warnings");
    expect(verdict([c("warn"), c("fail")])).toBe("not-ready");
  });
});

describe("IOMMU: firmware, kernel and isolation told apart (synthetic sysfs trees)", () => {
  it("DMAR present but no groups: disabled in the kernel, fixed by intel_iommu=on and a reboot", async () => {
    const c = byId(runChecks(await reportOf(withCpu(buildDmarBridgeHost()).root))).get("iommu.enabled");
    expect(c).toMatchObject({ level: "warn", state: "disabled-in-kernel", reboot: true });
    expect(c?.remediation).toContain("intel_iommu=on iommu=pt");
    expect(c?.facts).toContain("/sys/firmware/acpi/tables/DMAR");
  });
  it("readable ACPI tables without DMAR on bare metal: disabled in firmware, with the BIOS names", async () => {
    const fx = withCpu(new SysfsFixture())
      .file("/sys/firmware/acpi/tables/APIC", "APIC")
      .file("/proc/cmdline", "ro\n");
    const c = byId(runChecks(await reportOf(fx.root))).get("iommu.enabled");
    expect(c).toMatchObject({ level: "warn", state: "disabled-in-firmware", reboot: true });
    expect(c?.remediation).toContain("VT-d");
  });
  it("a GPU and its audio function on vfio-pci: listed as bound, and their shared group is named", async () => {
    const checks = byId(runChecks(await reportOf(withCpu(buildVfioGpuHost()).root)));
    expect(checks.get("passthrough.candidates")?.reason).toContain(
      `bound to vfio-pci (${VFIO.gpu}, ${VFIO.audio})`,
    );
    expect(checks.get("iommu.isolation")?.reason).toContain(
      `group ${VFIO.group} [${VFIO.gpu} ${VFIO.audio}]`,
    );
  });
  it("an SR-IOV PF: reports its VF capacity and how many are enabled", async () => {
    const c = byId(runChecks(await reportOf(withCpu(buildSriovHost()).root))).get("sriov.capable");
    expect(c?.reason).toContain("0000:03:00.0 up to 7 VFs (2 enabled)");
  });
});

describe("KVM module rules (pure, over a report)", () => {
  it("a live host with vmx but no kvm_intel loaded: disabled in the kernel, fixed by modprobe", async () => {
    const base = await reportOf(withCpu(new SysfsFixture()).dir("/sys/module/kvm").root);
    const live: HostReport = { ...base, live: true };
    const c = byId(runChecks(live)).get("kvm.module");
    expect(c).toMatchObject({ level: "fail", state: "disabled-in-kernel" });
    expect(c?.remediation).toContain("modprobe kvm_intel");
  });
  it("a probe that booted firmware but not a kernel: present but unusable", async () => {
    const base = await reportOf(withCpu(new SysfsFixture()).root);
    const r: HostReport = {
      ...base,
      kvm: {
        ...base.kvm,
        devKvm: { present: true, accessible: "yes" },
        probe: { verdict: "unusable", detail: "kernel stalled", stages: [], cached: false },
      },
    };
    expect(byId(runChecks(r)).get("kvm.functional")).toMatchObject({
      level: "fail",
      state: "present-but-unusable",
    });
  });
});

describe.skipIf(!sharedHostsAvailable)("checks on the shared real-machine snapshots", () => {
  const checksOf = async (h: SharedHost) => byId(runChecks(await reportOf(sharedHostRoot(h))));
  it("laptop: VT-x and EPT pass, IOMMU on with 15 groups, and group 8 (xHCI + Thunderbolt) is shared", async () => {
    const c = await checksOf("intel-i7-1270p-laptop");
    expect(c.get("cpu.virt")?.level).toBe("pass");
    expect(c.get("cpu.slat")?.level).toBe("pass");
    expect(c.get("iommu.enabled")?.reason).toContain("15 IOMMU groups");
    expect(c.get("iommu.isolation")?.reason).toContain("group 8 [0000:00:0d.0 0000:00:0d.2 0000:00:0d.3]");
  });
  it("Ryzen desktop: AMD-V passes; with no groups and no ACPI tables captured the IOMMU state is unknown", async () => {
    const c = await checksOf("amd-ryzen-1600-desktop");
    expect(c.get("cpu.virt")?.reason).toContain("AMD-V");
    expect(c.get("iommu.enabled")).toMatchObject({ level: "warn", state: "unknown" });
    expect(c.get("net.nics")?.reason).toContain("4 physical NICs");
  });
  it("kvm guest: the offline CPUs are flagged", async () => {
    const c = await checksOf("kvm-guest-skylake-offline-cpus");
    expect(c.get("cpu.offline")).toMatchObject({ level: "warn" });
    expect(c.get("cpu.offline")?.reason).toContain("2-3");
  });
  it("every snapshot's checks carry ids the check table declares (runChecks(report, ids) relies on it)", async () => {
    for (const h of [
      "intel-i7-1270p-laptop",
      "amd-ryzen-1600-desktop",
      "kvm-guest-skylake-offline-cpus",
    ] as const) {
      const ids = [...(await checksOf(h)).keys()];
      expect(ids.filter((id) => !CHECK_IDS.includes(id))).toEqual([]);
    }
  });
});
if (!sharedHostsAvailable) it.skip(`checks on snapshots: ${SKIP_REASON}`, () => {});
