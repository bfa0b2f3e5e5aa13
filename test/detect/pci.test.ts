import { existsSync, readFileSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { detectPci, parseModalias } from "../../src/detect/pci.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import type { PciDevice } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { loadPciIds, PciIdsText } from "../../src/host/pci-ids.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import { buildSriovHost, buildVfioGpuHost, SRIOV, SysfsFixture, VFIO } from "../helpers/sysfs-fixture.js";

const SYSTEM_PCI_IDS = "/usr/share/misc/pci.ids";

function ctxAt(root: string): DetectContext {
  return { fs: new RootedHostFs(root), warnings: [] };
}

async function snapshotPci(host: SharedHost, withIds = false) {
  const ctx = ctxAt(sharedHostRoot(host));
  const pci = await detectPci(ctx, withIds ? await loadPciIds() : null);
  return { ctx, pci };
}

function byAddress(pci: PciDevice[], address: string): PciDevice {
  const d = pci.find((p) => p.address === address);
  if (!d) throw new Error(`no PCI function ${address} in [${pci.map((p) => p.address).join(", ")}]`);
  return d;
}

if (!sharedHostsAvailable) {
  it.skip(`real-machine PCI suites: ${SKIP_REASON}`, () => {});
}

describe.skipIf(!sharedHostsAvailable)("PCI detection on real-machine snapshots", () => {
  it("laptop: lists all 23 functions in address order, with drivers from the driver links", async () => {
    const { pci } = await snapshotPci("intel-i7-1270p-laptop");
    expect(pci).toHaveLength(23);
    expect(pci.map((d) => d.address)).toEqual([...pci.map((d) => d.address)].sort());
    const wifi = byAddress(pci, "0000:00:14.3");
    expect(wifi).toMatchObject({ vendorId: "8086", deviceId: "51f0", classId: "028000", driver: "iwlwifi" });
    expect(wifi.sources.driver).toBe("/sys/devices/pci0000:00/0000:00:14.3/driver");
    expect(byAddress(pci, "0000:00:08.0").driver).toBeNull(); // no driver link in the snapshot
  });

  it("laptop: takes the IOMMU group from the basename of a dangling iommu_group link", async () => {
    const { pci, ctx } = await snapshotPci("intel-i7-1270p-laptop");
    expect(byAddress(pci, "0000:00:0d.0").iommuGroup).toBe(8);
    expect(byAddress(pci, "0000:00:0d.3").iommuGroup).toBe(8);
    expect(byAddress(pci, "0000:00:14.3").iommuGroup).toBe(10);
    expect(byAddress(pci, "0000:04:00.0").iommuGroup).toBe(14);
    expect(pci.every((d) => d.iommuGroup !== null)).toBe(true);
    expect(ctx.warnings).toEqual([]);
  });

  it("laptop: reads subsystem ids from modalias when subsystem_vendor/subsystem_device are absent", async () => {
    const { pci } = await snapshotPci("intel-i7-1270p-laptop");
    const wifi = byAddress(pci, "0000:00:14.3");
    expect(wifi.subsystemVendorId).toBe("8086");
    expect(wifi.subsystemDeviceId).toBe("0090");
    expect(wifi.sources.subsystemVendorId).toBe("/sys/devices/pci0000:00/0000:00:14.3/modalias");
  });

  it("laptop: maps numa_node -1 to null and finds the parent bridge of the NVMe drive", async () => {
    const { pci } = await snapshotPci("intel-i7-1270p-laptop");
    expect(pci.every((d) => d.numaNode === null)).toBe(true);
    expect(byAddress(pci, "0000:04:00.0")).toMatchObject({
      classId: "010802",
      driver: "nvme",
      parent: "0000:00:06.0",
    });
    expect(byAddress(pci, "0000:00:06.0").parent).toBeNull(); // on the root bus
  });

  it("AMD desktop: lists 43 functions without driver or IOMMU links, and the bridge chain of the I350", async () => {
    const { pci } = await snapshotPci("amd-ryzen-1600-desktop");
    expect(pci).toHaveLength(43);
    expect(pci.every((d) => d.driver === null && d.iommuGroup === null)).toBe(true);
    const i350 = byAddress(pci, "0000:06:00.0");
    expect(i350).toMatchObject({
      vendorId: "8086",
      deviceId: "1521",
      subsystemVendorId: "ffff",
      subsystemDeviceId: "0000",
      classId: "020000",
      parent: "0000:02:04.0",
      sriov: null,
      physfn: null,
    });
    expect(byAddress(pci, "0000:02:04.0").parent).toBe("0000:01:00.2");
    expect(byAddress(pci, "0000:01:00.2").parent).toBe("0000:00:01.3");
  });

  it.skipIf(!existsSync(SYSTEM_PCI_IDS))(
    "AMD desktop: names 8086:1521 and its class from the system pci.ids",
    async () => {
      const { pci } = await snapshotPci("amd-ryzen-1600-desktop", true);
      expect(byAddress(pci, "0000:06:00.0")).toMatchObject({
        vendorName: "Intel Corporation",
        deviceName: "I350 Gigabit Network Connection",
        className: "Ethernet controller",
      });
      expect(byAddress(pci, "0000:03:00.0").vendorName).toMatch(/Realtek/);
    },
  );

  it("xeon server (a VM): lists 26 functions with the virtio-net at 0000:01:00.0 behind root port 00:02.0", async () => {
    const { pci } = await snapshotPci("intel-xeon-gold-5218r-server");
    expect(pci).toHaveLength(26);
    expect(byAddress(pci, "0000:01:00.0")).toMatchObject({
      vendorId: "1af4",
      deviceId: "1041",
      classId: "020000",
      driver: "virtio-pci",
      parent: "0000:00:02.0",
    });
    expect(pci.every((d) => d.iommuGroup === null)).toBe(true);
  });

  it("kvm guest snapshot: has no PCI functions at all", async () => {
    const { pci, ctx } = await snapshotPci("kvm-guest-skylake-offline-cpus");
    expect(pci).toEqual([]);
    expect(ctx.warnings).toEqual([]);
  });
});

describe("PCI detection on synthetic sysfs trees", () => {
  const fixtures: SysfsFixture[] = [];
  const build = (f: (fx: SysfsFixture) => SysfsFixture) => {
    const fx = f(new SysfsFixture());
    fixtures.push(fx);
    return fx;
  };
  afterAll(() => {
    for (const fx of fixtures) fx.cleanup();
  });

  it("SR-IOV PF: reports totalVfs 7, numVfs 2 and the VF addresses from virtfnN links", async () => {
    const fx = build(buildSriovHost);
    const pci = await detectPci({ fs: fx.fs(), warnings: [] }, null);
    const pf = byAddress(pci, SRIOV.pf);
    expect(pf.sriov).toEqual({ totalVfs: 7, numVfs: 2, vfs: [...SRIOV.vfs] });
    expect(pf).toMatchObject({ driver: "igb", numaNode: 0, physfn: null, parent: SRIOV.rootPort });
    expect(pf.resetMethods).toEqual(["flr", "bus"]);
    expect(pf.sources["sriov.totalVfs"]).toBe(`${fx.pciPath(SRIOV.pf)}/sriov_totalvfs`);
  });

  it("SR-IOV VFs: point back at their PF through physfn and are bound to igbvf", async () => {
    const fx = build(buildSriovHost);
    const pci = await detectPci({ fs: fx.fs(), warnings: [] }, null);
    const vfs = pci.filter((d) => d.physfn !== null);
    expect(vfs.map((d) => d.address)).toEqual([...SRIOV.vfs]);
    for (const vf of vfs) {
      expect(vf).toMatchObject({ physfn: SRIOV.pf, driver: "igbvf", deviceId: "1520", sriov: null });
    }
  });

  it("VFIO GPU: binds the GPU and its HDMI audio to vfio-pci with driver_override, in one group", async () => {
    const fx = build(buildVfioGpuHost);
    const ctx: DetectContext = { fs: fx.fs(), warnings: [] };
    const pci = await detectPci(ctx, null);
    const gpu = byAddress(pci, VFIO.gpu);
    const audio = byAddress(pci, VFIO.audio);
    expect(gpu).toMatchObject({
      vendorId: "10de",
      deviceId: "1b80",
      classId: "030000",
      driver: "vfio-pci",
      driverOverride: "vfio-pci",
      bootVga: false,
      iommuGroup: VFIO.group,
      parent: VFIO.rootPort,
      resetMethods: ["bus"],
    });
    expect(audio).toMatchObject({
      deviceId: "10f0",
      classId: "040300",
      driver: "vfio-pci",
      iommuGroup: VFIO.group,
    });
    expect(byAddress(pci, VFIO.igpu)).toMatchObject({ bootVga: true, driver: "i915", driverOverride: null });
    expect(ctx.warnings).toEqual([]);
  });

  it.skipIf(!existsSync(SYSTEM_PCI_IDS))("VFIO GPU: names both NVIDIA functions from pci.ids", async () => {
    const fx = build(buildVfioGpuHost);
    const pci = await detectPci({ fs: fx.fs(), warnings: [] }, await loadPciIds());
    expect(byAddress(pci, VFIO.gpu).deviceName).toBe("GP104 [GeForce GTX 1080]");
    expect(byAddress(pci, VFIO.gpu).className).toBe("VGA compatible controller");
    expect(byAddress(pci, VFIO.audio).deviceName).toBe("GP104 High Definition Audio Controller");
  });

  it("malformed files: garbage numa_node, dangling driver link and missing class give nulls and warnings", async () => {
    const fx = build((f) =>
      f.pci({ address: "0000:00:05.0", vendor: "8086", device: "1572", class: "020000", noModalias: true }),
    );
    const dev = fx.pciPath("0000:00:05.0");
    fx.file(`${dev}/numa_node`, "garbage\n");
    fx.link(`${dev}/driver`, "/sys/bus/pci/drivers/i40e"); // the drivers/i40e directory does not exist
    fx.remove(`${dev}/class`);
    fx.file(`${dev}/sriov_totalvfs`, "lots\n");

    const ctx: DetectContext = { fs: fx.fs(), warnings: [] };
    const pci = await detectPci(ctx, null);
    expect(pci).toHaveLength(1);
    const d = pci[0] as PciDevice;
    expect(d).toMatchObject({ numaNode: null, driver: null, classId: null, className: null, sriov: null });
    expect(d.vendorId).toBe("8086");
    const paths = ctx.warnings.map((w) => w.path);
    expect(paths).toContain(`${dev}/numa_node`);
    expect(paths).toContain(`${dev}/driver`);
    expect(paths).toContain(`${dev}/class`);
    expect(paths).toContain(`${dev}/sriov_totalvfs`);
  });

  it("takes ids from modalias when it parses, without reading the separate id files", async () => {
    const fx = build((f) =>
      f.pci({ address: "0000:00:06.0", vendor: "8086", device: "1521", class: "020000" }),
    );
    const dev = fx.pciPath("0000:00:06.0");
    fx.file(`${dev}/vendor`, "intel\n"); // never read: modalias is the kernel's summary of the same ids
    const ctx: DetectContext = { fs: fx.fs(), warnings: [] };
    const [d] = await detectPci(ctx, null);
    expect(d?.vendorId).toBe("8086");
    expect(d?.classId).toBe("020000");
    expect(d?.sources.vendorId).toBe(`${dev}/modalias`);
    expect(ctx.warnings).toEqual([]);
  });

  it("malformed modalias: warns about it and falls back to the id files", async () => {
    const fx = build((f) =>
      f.pci({ address: "0000:00:06.0", vendor: "8086", device: "1521", class: "020000" }),
    );
    const dev = fx.pciPath("0000:00:06.0");
    fx.file(`${dev}/modalias`, "garbage\n");
    const ctx: DetectContext = { fs: fx.fs(), warnings: [] };
    const [d] = await detectPci(ctx, null);
    expect(d?.vendorId).toBe("8086");
    expect(d?.sources.vendorId).toBe(`${dev}/vendor`);
    expect(ctx.warnings.map((w) => w.path)).toEqual([`${dev}/modalias`]);
  });

  it("malformed vendor file and no modalias: vendor unknown, with a warning naming the file", async () => {
    const fx = build((f) =>
      f.pci({ address: "0000:00:06.0", vendor: "8086", device: "1521", class: "020000", noModalias: true }),
    );
    const dev = fx.pciPath("0000:00:06.0");
    fx.file(`${dev}/vendor`, "intel\n");
    const ctx: DetectContext = { fs: fx.fs(), warnings: [] };
    const [d] = await detectPci(ctx, null);
    expect(d?.vendorId).toBeNull();
    expect(d?.deviceId).toBe("1521");
    expect(ctx.warnings.map((w) => w.path)).toEqual([`${dev}/vendor`]);
  });

  it("walks /sys/devices/pci* when /sys/bus/pci/devices is absent", async () => {
    const fx = build(buildSriovHost);
    fx.remove("/sys/bus/pci/devices");
    const pci = await detectPci({ fs: fx.fs(), warnings: [] }, null);
    expect(pci.map((d) => d.address)).toEqual([SRIOV.rootPort, SRIOV.pf, ...SRIOV.vfs]);
  });
});

describe("modalias and pci.ids lookups", () => {
  it("parses ids and class from a PCI modalias", () => {
    expect(parseModalias("pci:v00008086d00001521sv0000FFFFsd00000000bc02sc00i00\n")).toEqual({
      vendor: "8086",
      device: "1521",
      subsystemVendor: "ffff",
      subsystemDevice: "0000",
      classId: "020000",
    });
    expect(parseModalias("usb:v1D6Bp0002")).toBeNull();
  });

  it("looks devices up inside their own vendor's block and names classes by subclass", () => {
    const ids = new PciIdsText(
      [
        "# comment",
        "10de  NVIDIA Corporation",
        "\t10f0  GP104 High Definition Audio Controller",
        "\t\t1043 8599  some subsystem",
        "8086  Intel Corporation",
        "\t1521  I350 Gigabit Network Connection",
        "# classes",
        "C 02  Network controller",
        "\t00  Ethernet controller",
        "\t80  Network controller",
        "C 0c  Serial bus controller",
        "\t03  USB controller",
        "\t\t30  XHCI",
        "",
      ].join("\n"),
    );
    expect(ids.vendor("10de")).toBe("NVIDIA Corporation");
    expect(ids.vendor("8086")).toBe("Intel Corporation");
    expect(ids.device("8086", "10f0")).toBeNull();
    expect(ids.device("10DE", "10F0")).toBe("GP104 High Definition Audio Controller");
    expect(ids.device("8086", "1521")).toBe("I350 Gigabit Network Connection");
    expect(ids.className("020000")).toBe("Ethernet controller");
    expect(ids.className("0c0330")).toBe("USB controller");
    expect(ids.className("0c05")).toBe("Serial bus controller");
    expect(ids.className("ff0000")).toBeNull();
    expect(ids.vendor("nope")).toBeNull();
  });

  it.skipIf(!existsSync(SYSTEM_PCI_IDS))(
    "finds every device of large vendor blocks by binary search",
    async () => {
      const ids = await loadPciIds();
      const lines = readFileSync(SYSTEM_PCI_IDS, "utf8").split("\n");
      for (const vendor of ["8086", "10de", "1af4", "1022", "1000"]) {
        const start = lines.indexOf(lines.find((l) => l.startsWith(`${vendor}  `)) ?? "");
        expect(start, vendor).toBeGreaterThanOrEqual(0);
        let checked = 0;
        for (const line of lines.slice(start + 1)) {
          if (line.startsWith("#") || line === "" || line.startsWith("\t\t")) continue;
          if (!line.startsWith("\t")) break;
          const [id, name] = [line.slice(1, 5), line.slice(7).trim()];
          expect(ids?.device(vendor, id), `${vendor}:${id}`).toBe(name);
          checked++;
        }
        expect(checked, vendor).toBeGreaterThan(0);
      }
      expect(ids?.device("8086", "0000")).toBeNull();
      expect(ids?.device("8086", "fffe")).toBeNull();
    },
  );

  it("returns null when no pci.ids file exists", async () => {
    expect(await loadPciIds(["/nonexistent/pci.ids"])).toBeNull();
  });

  it.skipIf(!existsSync(SYSTEM_PCI_IDS))(
    "answers a host's worth of lookups in the system pci.ids quickly",
    async () => {
      const ids = await loadPciIds();
      expect(ids).not.toBeNull();
      const t0 = performance.now();
      expect(ids?.device("8086", "10f0")).toBe("82578DC Gigabit Network Connection");
      expect(ids?.device("10de", "10f0")).toBe("GP104 High Definition Audio Controller");
      expect(ids?.device("1af4", "1041")).toBe("Virtio 1.0 network device");
      for (let i = 0; i < 50; i++) ids?.device("8086", (0x5100 + i).toString(16));
      const ms = performance.now() - t0;
      console.log(`pci.ids: 53 lookups in ${ms.toFixed(2)} ms`);
      expect(ms).toBeLessThan(15);
    },
  );
});
