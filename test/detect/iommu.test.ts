import { afterAll, describe, expect, it } from "vitest";
import { detectIommu, groupOf, parseIommuParams } from "../../src/detect/iommu.js";
import { detectPci } from "../../src/detect/pci.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import { RootedHostFs } from "../../src/host/fs.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import {
  buildDmarBridgeHost,
  buildVfioGpuHost,
  DMAR_BRIDGE,
  SysfsFixture,
  VFIO,
} from "../helpers/sysfs-fixture.js";

async function detectAt(root: string) {
  const ctx: DetectContext = { fs: new RootedHostFs(root), warnings: [] };
  const pci = await detectPci(ctx, null);
  return { ctx, pci, iommu: await detectIommu(ctx, pci) };
}

const snapshot = (host: SharedHost) => detectAt(sharedHostRoot(host));

if (!sharedHostsAvailable) {
  it.skip(`real-machine IOMMU suites: ${SKIP_REASON}`, () => {});
}

describe.skipIf(!sharedHostsAvailable)("IOMMU detection on real-machine snapshots", () => {
  it("laptop: rebuilds 15 groups from the devices' iommu_group links when /sys/kernel is absent", async () => {
    const { iommu } = await snapshot("intel-i7-1270p-laptop");
    expect(iommu.groupsPopulated).toBe(true);
    expect(iommu.groups).toHaveLength(15);
    expect(iommu.groups.map((g) => g.id)).toEqual([...Array(15).keys()]);
    expect(iommu.sources.groups).toBe("/sys/bus/pci/devices/*/iommu_group");
  });

  it("laptop: puts 0000:00:0d.0 in group 8 with the Thunderbolt functions 0d.2 and 0d.3", async () => {
    const { iommu } = await snapshot("intel-i7-1270p-laptop");
    const g = groupOf(iommu.groups, "0000:00:0d.0");
    expect(g?.id).toBe(8);
    expect(g?.devices).toEqual(["0000:00:0d.0", "0000:00:0d.2", "0000:00:0d.3"]);
    expect(groupOf(iommu.groups, "0000:00:1f.3")?.devices).toEqual([
      "0000:00:1f.0",
      "0000:00:1f.3",
      "0000:00:1f.4",
      "0000:00:1f.5",
    ]);
  });

  it("laptop: says nothing about ACPI tables, cmdline or interrupt remapping it cannot see", async () => {
    const { iommu } = await snapshot("intel-i7-1270p-laptop");
    expect(iommu).toMatchObject({
      acpiTable: null,
      acpiTablesReadable: false,
      cmdline: null,
      cmdlineParams: {},
      interruptRemapping: "unknown",
    });
  });

  it("AMD desktop, xeon VM and kvm guest: report no groups and groupsPopulated false", async () => {
    for (const host of [
      "amd-ryzen-1600-desktop",
      "intel-xeon-gold-5218r-server",
      "kvm-guest-skylake-offline-cpus",
    ] as const) {
      const { iommu, pci } = await snapshot(host);
      expect(iommu.groups, host).toEqual([]);
      expect(iommu.groupsPopulated, host).toBe(false);
      expect(iommu.interruptRemapping, host).toBe("unknown");
      if (host !== "kvm-guest-skylake-offline-cpus") expect(pci.length, host).toBeGreaterThan(0);
    }
  });
});

describe("IOMMU detection on synthetic sysfs trees", () => {
  const fixtures: SysfsFixture[] = [];
  const build = (f: (fx: SysfsFixture) => SysfsFixture) => {
    const fx = f(new SysfsFixture());
    fixtures.push(fx);
    return fx;
  };
  afterAll(() => {
    for (const fx of fixtures) fx.cleanup();
  });

  it("VFIO GPU: reads group 13 with the GPU and its audio function from /sys/kernel/iommu_groups", async () => {
    const fx = build(buildVfioGpuHost);
    const { iommu } = await detectAt(fx.root);
    expect(iommu.groupsPopulated).toBe(true);
    expect(iommu.sources.groups).toBe("/sys/kernel/iommu_groups");
    expect(iommu.groups.map((g) => g.id)).toEqual([0, 1, 13]);
    expect(groupOf(iommu.groups, VFIO.gpu)).toEqual({ id: VFIO.group, devices: [VFIO.gpu, VFIO.audio] });
  });

  it("DMAR without groups: finds the DMAR table while no group exists and intel_iommu is absent", async () => {
    const fx = build(buildDmarBridgeHost);
    const { iommu, pci } = await detectAt(fx.root);
    expect(pci.length).toBeGreaterThan(0);
    expect(iommu).toMatchObject({
      acpiTable: "DMAR",
      acpiTablesReadable: true,
      cmdline: DMAR_BRIDGE.cmdline,
      cmdlineParams: {},
      groupsPopulated: false,
      groups: [],
    });
    expect(iommu.sources.acpiTable).toBe("/sys/firmware/acpi/tables/DMAR");
    expect(iommu.sources.cmdline).toBe("/proc/cmdline");
  });

  it("parses intel_iommu, amd_iommu, iommu and iommu.* from the command line, last one winning", () => {
    expect(
      parseIommuParams(
        "BOOT_IMAGE=/vmlinuz ro intel_iommu=off intel_iommu=on,sm_on iommu=pt iommu.strict=0 quiet",
      ),
    ).toEqual({ intel_iommu: "on,sm_on", iommu: "pt", "iommu.strict": "0" });
    expect(parseIommuParams("amd_iommu=on amd_iommu_intr=legacy intremap=off")).toEqual({
      amd_iommu: "on",
      amd_iommu_intr: "legacy",
      intremap: "off",
    });
    expect(parseIommuParams(null)).toEqual({});
  });

  it("interrupt remapping: yes when every DMAR unit's ecap has bit 3 (IR) set", async () => {
    const fx = build((f) =>
      f
        .file("/sys/firmware/acpi/tables/DMAR", "DMAR")
        .file("/sys/class/iommu/dmar0/intel-iommu/ecap", "f050da\n")
        .file("/sys/class/iommu/dmar1/intel-iommu/ecap", "f0205e\n")
        .file("/proc/cmdline", "intel_iommu=on\n"),
    );
    const { iommu } = await detectAt(fx.root);
    expect(iommu.interruptRemapping).toBe("yes");
    expect(iommu.cmdlineParams).toEqual({ intel_iommu: "on" });
  });

  it("interrupt remapping: no when one DMAR unit lacks IR, or when intremap=off", async () => {
    const lacking = build((f) =>
      f
        .file("/sys/class/iommu/dmar0/intel-iommu/ecap", "f050da\n")
        .file("/sys/class/iommu/dmar1/intel-iommu/ecap", "f02056\n"),
    );
    expect((await detectAt(lacking.root)).iommu.interruptRemapping).toBe("no");
    const off = build((f) =>
      f.file("/sys/class/iommu/dmar0/intel-iommu/ecap", "f050da\n").file("/proc/cmdline", "intremap=off\n"),
    );
    expect((await detectAt(off.root)).iommu.interruptRemapping).toBe("no");
  });

  it("interrupt remapping: yes on AMD when ivhd units are registered", async () => {
    const fx = build((f) =>
      f.file("/sys/firmware/acpi/tables/IVRS", "IVRS").dir("/sys/class/iommu/ivhd0/amd-iommu"),
    );
    const { iommu } = await detectAt(fx.root);
    expect(iommu).toMatchObject({ acpiTable: "IVRS", interruptRemapping: "yes" });
  });

  it("interrupt remapping: no when ACPI tables are readable and none describes an IOMMU", async () => {
    const fx = build((f) =>
      f.file("/sys/firmware/acpi/tables/APIC", "APIC").file("/sys/firmware/acpi/tables/DSDT", "DSDT"),
    );
    const { iommu } = await detectAt(fx.root);
    expect(iommu).toMatchObject({ acpiTable: null, acpiTablesReadable: true, interruptRemapping: "no" });
  });

  it("interrupt remapping: a malformed ecap is unknown with a warning naming the file", async () => {
    const fx = build((f) => f.file("/sys/class/iommu/dmar0/intel-iommu/ecap", "zzz\n"));
    const { iommu, ctx } = await detectAt(fx.root);
    expect(iommu.interruptRemapping).toBe("unknown");
    expect(ctx.warnings.map((w) => w.path)).toEqual(["/sys/class/iommu/dmar0/intel-iommu/ecap"]);
  });
});
