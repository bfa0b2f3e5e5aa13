// Synthetic host roots for detector tests, laid out as the kernel documents sysfs
// (Documentation/ABI/testing/sysfs-bus-pci, sysfs-class-net, sysfs-kernel-iommu_groups): devices live
// under /sys/devices/pci<domain>:<bus>/..., and every other view (/sys/bus/pci/devices, driver,
// iommu_group, virtfnN/physfn, /sys/class/net, master/upper_/lower_) is a *relative* symlink into that
// tree, exactly as the kernel shows them. Generic file()/link()/dir() let other suites write /proc/cpuinfo,
// /dev nodes or anything else into the same root.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { RootedHostFs } from "../../src/host/fs.js";

export interface PciFunctionSpec {
  address: string; // 0000:03:00.0
  /** Upstream bridge address; the function is placed in its directory. Absent: on the root bus. */
  parent?: string;
  vendor: string; // "8086"
  device: string;
  class: string; // "020000"
  subsystemVendor?: string;
  subsystemDevice?: string;
  driver?: string;
  driverOverride?: string;
  numaNode?: number;
  iommuGroup?: number;
  bootVga?: boolean;
  resetMethod?: string; // "flr bus"
  sriov?: { totalVfs: number; numVfs: number };
  /** Set on a VF: the PF's address (writes physfn here and virtfnN in the PF). */
  physfn?: string;
  /** Omit the modalias file (it is written by default, derived from the ids). */
  noModalias?: boolean;
  /** Extra attribute files, by name. */
  attrs?: Record<string, string>;
}

export interface NetdevSpec {
  name: string;
  /** PCI address of the device it belongs to; absent: a virtual netdev under /sys/devices/virtual/net. */
  pci?: string;
  mac?: string;
  operstate?: string;
  carrier?: 0 | 1;
  speed?: number;
  mtu?: number;
  ifindex?: number;
  iflink?: number;
  /** bridge, bond, vlan, wireless, tun: written as the kernel marks them (bridge/, bonding/, ...). */
  kind?: "bridge" | "bond" | "vlan" | "wireless" | "tun";
  /** For a vlan: the lower device. */
  lower?: string;
  /** Bridge or bond it is enslaved to (must already exist). */
  master?: string;
  uevent?: Record<string, string>;
}

export interface Route {
  iface: string;
  destination?: string; // hex, little-endian as the kernel prints it; default route: 00000000
  gateway?: string;
  flags?: number; // RTF_UP | RTF_GATEWAY = 3
  metric?: number;
  mask?: string;
}

export class SysfsFixture {
  readonly root: string;
  private readonly pciPaths = new Map<string, string>();
  private readonly netPaths = new Map<string, string>();
  private readonly netKinds = new Map<string, NetdevSpec["kind"]>();
  private readonly ports = new Map<string, string[]>();
  private readonly vfCount = new Map<string, number>();
  private ifindex = 1;

  constructor(root?: string) {
    this.root = root ?? mkdtempSync(path.join(tmpdir(), "kvmstrap-sysfs-"));
  }

  /** A HostFs rooted at this fixture. */
  fs(): RootedHostFs {
    return new RootedHostFs(this.root);
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }

  private real(hostPath: string): string {
    return path.join(this.root, path.posix.resolve("/", hostPath));
  }

  dir(hostPath: string): this {
    mkdirSync(this.real(hostPath), { recursive: true });
    return this;
  }

  file(hostPath: string, content: string): this {
    mkdirSync(path.dirname(this.real(hostPath)), { recursive: true });
    writeFileSync(this.real(hostPath), content);
    return this;
  }

  /** Removes a file, link or directory (to make a tree partial, as snapshots are). */
  remove(hostPath: string): this {
    rmSync(this.real(hostPath), { recursive: true, force: true });
    return this;
  }

  /** A symlink at hostPath to the host path target, written relative as sysfs does. */
  link(hostPath: string, target: string): this {
    const at = path.posix.resolve("/", hostPath);
    mkdirSync(path.dirname(this.real(at)), { recursive: true });
    rmSync(this.real(at), { force: true });
    symlinkSync(path.posix.relative(path.posix.dirname(at), path.posix.resolve("/", target)), this.real(at));
    return this;
  }

  /** Resolved /sys/devices path of a PCI function added earlier. */
  pciPath(address: string): string {
    const p = this.pciPaths.get(address);
    if (!p) throw new Error(`fixture: PCI function ${address} not added`);
    return p;
  }

  netPath(name: string): string {
    const p = this.netPaths.get(name);
    if (!p) throw new Error(`fixture: netdev ${name} not added`);
    return p;
  }

  pci(spec: PciFunctionSpec): this {
    const [domain, bus] = spec.address.split(":");
    const base = spec.parent ? this.pciPath(spec.parent) : `/sys/devices/pci${domain}:${bus}`;
    const dev = `${base}/${spec.address}`;
    this.pciPaths.set(spec.address, dev);
    const hex = (id: string, width: number) => `0x${id.toLowerCase().padStart(width, "0")}\n`;
    this.file(`${dev}/vendor`, hex(spec.vendor, 4));
    this.file(`${dev}/device`, hex(spec.device, 4));
    this.file(`${dev}/class`, hex(spec.class, 6));
    if (spec.subsystemVendor) this.file(`${dev}/subsystem_vendor`, hex(spec.subsystemVendor, 4));
    if (spec.subsystemDevice) this.file(`${dev}/subsystem_device`, hex(spec.subsystemDevice, 4));
    if (!spec.noModalias) {
      const u = (id: string | undefined) => (id ?? "0").toUpperCase().padStart(8, "0");
      const c = spec.class.toUpperCase().padStart(6, "0");
      this.file(
        `${dev}/modalias`,
        `pci:v${u(spec.vendor)}d${u(spec.device)}sv${u(spec.subsystemVendor)}sd${u(spec.subsystemDevice)}` +
          `bc${c.slice(0, 2)}sc${c.slice(2, 4)}i${c.slice(4, 6)}\n`,
      );
    }
    this.file(`${dev}/numa_node`, `${spec.numaNode ?? -1}\n`);
    this.file(`${dev}/driver_override`, `${spec.driverOverride ?? "(null)"}\n`);
    if (spec.bootVga !== undefined) this.file(`${dev}/boot_vga`, spec.bootVga ? "1\n" : "0\n");
    if (spec.resetMethod) this.file(`${dev}/reset_method`, `${spec.resetMethod}\n`);
    for (const [name, content] of Object.entries(spec.attrs ?? {})) this.file(`${dev}/${name}`, content);

    this.link(`/sys/bus/pci/devices/${spec.address}`, dev);
    if (spec.driver) this.bindDriver(spec.address, spec.driver);
    if (spec.iommuGroup !== undefined) this.iommuGroup(spec.iommuGroup, [spec.address]);
    if (spec.sriov) {
      this.file(`${dev}/sriov_totalvfs`, `${spec.sriov.totalVfs}\n`);
      this.file(`${dev}/sriov_numvfs`, `${spec.sriov.numVfs}\n`);
    }
    if (spec.physfn) {
      const pf = this.pciPath(spec.physfn);
      const n = this.vfCount.get(spec.physfn) ?? 0;
      this.vfCount.set(spec.physfn, n + 1);
      this.link(`${pf}/virtfn${n}`, dev);
      this.link(`${dev}/physfn`, pf);
    }
    return this;
  }

  /** driver -> /sys/bus/pci/drivers/<drv>, and the driver's link back to the device. */
  bindDriver(address: string, driver: string): this {
    const dev = this.pciPath(address);
    this.dir(`/sys/bus/pci/drivers/${driver}`);
    this.link(`${dev}/driver`, `/sys/bus/pci/drivers/${driver}`);
    this.link(`/sys/bus/pci/drivers/${driver}/${address}`, dev);
    return this;
  }

  /** /sys/kernel/iommu_groups/N/devices/<addr> and each device's iommu_group link. */
  iommuGroup(id: number, addresses: string[]): this {
    const group = `/sys/kernel/iommu_groups/${id}`;
    this.dir(`${group}/devices`);
    this.file(`${group}/type`, "DMA\n");
    for (const a of addresses) {
      const dev = this.pciPath(a);
      this.link(`${group}/devices/${a}`, dev);
      this.link(`${dev}/iommu_group`, group);
    }
    return this;
  }

  netdev(spec: NetdevSpec): this {
    const base = spec.pci ? this.pciPath(spec.pci) : "/sys/devices/virtual";
    const dir = `${base}/net/${spec.name}`;
    this.netPaths.set(spec.name, dir);
    this.netKinds.set(spec.name, spec.kind);
    const ifindex = spec.ifindex ?? ++this.ifindex;
    this.file(`${dir}/address`, `${spec.mac ?? "00:00:00:00:00:00"}\n`);
    this.file(`${dir}/operstate`, `${spec.operstate ?? "up"}\n`);
    this.file(`${dir}/mtu`, `${spec.mtu ?? 1500}\n`);
    this.file(`${dir}/ifindex`, `${ifindex}\n`);
    this.file(`${dir}/iflink`, `${spec.iflink ?? ifindex}\n`);
    if ((spec.operstate ?? "up") !== "down") {
      this.file(`${dir}/carrier`, `${spec.carrier ?? 1}\n`);
      this.file(`${dir}/speed`, `${spec.speed ?? -1}\n`);
    }
    const uevent: Record<string, string> = { ...spec.uevent };
    if (spec.kind === "bridge") {
      uevent.DEVTYPE ??= "bridge";
      this.file(`${dir}/bridge/stp_state`, "0\n").dir(`${dir}/brif`);
    } else if (spec.kind === "bond") {
      uevent.DEVTYPE ??= "bond";
      this.file(`${dir}/bonding/mode`, "active-backup 1\n").file(`${dir}/bonding/slaves`, "\n");
    } else if (spec.kind === "vlan") {
      uevent.DEVTYPE ??= "vlan";
      this.file(`/proc/net/vlan/${spec.name}`, `${spec.name}  VID: 0\n`);
    } else if (spec.kind === "wireless") {
      uevent.DEVTYPE ??= "wlan";
      this.dir(`${dir}/wireless`);
    } else if (spec.kind === "tun") {
      this.file(`${dir}/tun_flags`, "0x1002\n");
    }
    this.file(
      `${dir}/uevent`,
      `${Object.entries({ ...uevent, INTERFACE: spec.name, IFINDEX: String(ifindex) })
        .map(([k, v]) => `${k}=${v}`)
        .join("\n")}\n`,
    );
    if (spec.pci) this.link(`${dir}/device`, this.pciPath(spec.pci));
    this.link(`/sys/class/net/${spec.name}`, dir);
    if (spec.lower) this.adjacent(spec.name, spec.lower);
    if (spec.master) this.enslave(spec.name, spec.master);
    return this;
  }

  /** upper_<u> in the lower device, lower_<l> in the upper one, as the kernel links stacked netdevs. */
  private adjacent(upper: string, lower: string): void {
    const u = this.netPath(upper);
    const l = this.netPath(lower);
    this.link(`${l}/upper_${upper}`, u);
    this.link(`${u}/lower_${lower}`, l);
  }

  /** A port joins a bridge (brport/, brif/<port>) or a bond (bonding_slave/, bonding/slaves). */
  enslave(port: string, master: string): this {
    const p = this.netPath(port);
    const m = this.netPath(master);
    this.link(`${p}/master`, m);
    this.adjacent(master, port);
    if (this.netKinds.get(master) === "bond") {
      this.file(`${p}/bonding_slave/state`, "active\n");
      const slaves = [...this.enslaved(master), port];
      this.file(`${m}/bonding/slaves`, `${slaves.join(" ")}\n`);
    } else {
      this.dir(`${p}/brport`);
      this.link(`${m}/brif/${port}`, `${p}/brport`);
    }
    this.ports.set(master, [...this.enslaved(master), port]);
    return this;
  }

  private enslaved(master: string): string[] {
    return this.ports.get(master) ?? [];
  }

  /** /proc/net/route in the kernel's format. */
  routes(routes: Route[]): this {
    const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";
    const lines = routes.map((r) =>
      [
        r.iface,
        r.destination ?? "00000000",
        r.gateway ?? "00000000",
        (r.flags ?? 3).toString(16).toUpperCase().padStart(4, "0"),
        "0",
        "0",
        String(r.metric ?? 0),
        r.mask ?? "00000000",
        "0",
        "0",
        "0",
      ].join("\t"),
    );
    return this.file("/proc/net/route", `${[header, ...lines].join("\n")}\n`);
  }
}

// ---- Reusable hosts ----------------------------------------------------------------------------

export const SRIOV = {
  rootPort: "0000:00:01.0",
  pf: "0000:03:00.0",
  vfs: ["0000:03:10.0", "0000:03:10.4"],
  pfName: "enp3s0f0",
  vfNames: ["enp3s16", "enp3s16f4"],
} as const;

/** (a) An Intel I350 (8086:1521, igb) PF with sriov_totalvfs=7, sriov_numvfs=2 and two igbvf VFs. */
export function buildSriovHost(fx = new SysfsFixture()): SysfsFixture {
  fx.pci({
    address: SRIOV.rootPort,
    vendor: "8086",
    device: "1901",
    class: "060400",
    driver: "pcieport",
    iommuGroup: 1,
  });
  fx.pci({
    address: SRIOV.pf,
    parent: SRIOV.rootPort,
    vendor: "8086",
    device: "1521",
    class: "020000",
    subsystemVendor: "8086",
    subsystemDevice: "0001",
    driver: "igb",
    numaNode: 0,
    iommuGroup: 2,
    resetMethod: "flr bus",
    sriov: { totalVfs: 7, numVfs: 2 },
  });
  fx.netdev({ name: SRIOV.pfName, pci: SRIOV.pf, mac: "a0:36:9f:00:00:01", speed: 1000 });
  SRIOV.vfs.forEach((vf, i) => {
    fx.pci({
      address: vf,
      parent: SRIOV.rootPort,
      vendor: "8086",
      device: "1520",
      class: "020000",
      driver: "igbvf",
      numaNode: 0,
      iommuGroup: 3 + i,
      resetMethod: "flr",
      physfn: SRIOV.pf,
    });
    fx.netdev({ name: SRIOV.vfNames[i] ?? `vf${i}`, pci: vf, mac: `02:00:00:00:00:0${i + 1}`, speed: 1000 });
  });
  return fx;
}

export const VFIO = {
  rootPort: "0000:00:01.0",
  gpu: "0000:01:00.0",
  audio: "0000:01:00.1",
  igpu: "0000:00:02.0",
  group: 13,
} as const;

/** (b) A GTX 1080 (10de:1b80, boot_vga=0) and its HDMI audio (10de:10f0), both on vfio-pci in group 13. */
export function buildVfioGpuHost(fx = new SysfsFixture()): SysfsFixture {
  fx.pci({
    address: VFIO.igpu,
    vendor: "8086",
    device: "3e92",
    class: "030000",
    driver: "i915",
    bootVga: true,
    iommuGroup: 0,
  });
  fx.pci({
    address: VFIO.rootPort,
    vendor: "8086",
    device: "1901",
    class: "060400",
    driver: "pcieport",
    iommuGroup: 1,
  });
  const common = {
    parent: VFIO.rootPort,
    vendor: "10de",
    driver: "vfio-pci",
    driverOverride: "vfio-pci",
  } as const;
  fx.pci({
    ...common,
    address: VFIO.gpu,
    device: "1b80",
    class: "030000",
    bootVga: false,
    resetMethod: "bus",
  });
  fx.pci({ ...common, address: VFIO.audio, device: "10f0", class: "040300" });
  fx.iommuGroup(VFIO.group, [VFIO.gpu, VFIO.audio]);
  return fx;
}

export const DMAR_BRIDGE = {
  mgmtPci: "0000:00:1f.6",
  mgmt: "eno1",
  bridge: "br0",
  otherPci: "0000:02:00.0",
  other: "enp2s0",
  cmdline: "BOOT_IMAGE=/boot/vmlinuz-6.1.0-18-amd64 root=/dev/mapper/vg-root ro quiet",
} as const;

/**
 * (c) An Intel host whose firmware has a DMAR table while the kernel built no IOMMU groups (intel_iommu
 * absent from the command line), with eno1 enslaved to br0, br0 carrying the default route, and a second
 * NIC with a worse (higher-metric) default route.
 */
export function buildDmarBridgeHost(fx = new SysfsFixture()): SysfsFixture {
  fx.file("/sys/firmware/acpi/tables/DMAR", "DMAR\u0000\u0000\u0000");
  fx.file("/sys/firmware/acpi/tables/APIC", "APIC");
  fx.dir("/sys/kernel/iommu_groups");
  fx.file("/proc/cmdline", `${DMAR_BRIDGE.cmdline}\n`);
  fx.pci({ address: "0000:00:00.0", vendor: "8086", device: "3e30", class: "060000" });
  fx.pci({ address: DMAR_BRIDGE.mgmtPci, vendor: "8086", device: "15bc", class: "020000", driver: "e1000e" });
  fx.pci({ address: "0000:00:1c.0", vendor: "8086", device: "a338", class: "060400", driver: "pcieport" });
  fx.pci({
    address: DMAR_BRIDGE.otherPci,
    parent: "0000:00:1c.0",
    vendor: "8086",
    device: "1533",
    class: "020000",
    driver: "igb",
  });
  fx.netdev({ name: DMAR_BRIDGE.mgmt, pci: DMAR_BRIDGE.mgmtPci, mac: "3c:ec:ef:00:00:01", speed: 1000 });
  fx.netdev({
    name: DMAR_BRIDGE.other,
    pci: DMAR_BRIDGE.otherPci,
    mac: "3c:ec:ef:00:00:02",
    operstate: "down",
  });
  fx.netdev({ name: DMAR_BRIDGE.bridge, kind: "bridge", mac: "3c:ec:ef:00:00:01" });
  fx.enslave(DMAR_BRIDGE.mgmt, DMAR_BRIDGE.bridge);
  fx.routes([
    { iface: DMAR_BRIDGE.other, gateway: "0101A8C0", metric: 600 },
    { iface: DMAR_BRIDGE.bridge, gateway: "0100000A", metric: 100 },
    { iface: DMAR_BRIDGE.bridge, destination: "0000000A", mask: "00FFFFFF", flags: 1 },
  ]);
  return fx;
}
