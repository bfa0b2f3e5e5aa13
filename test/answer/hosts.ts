// Hosts for the answer-file suites: synthetic sysfs trees (detected for real) and hand-made disks
// (the validation rules are pure functions of the report, so disks are stated rather than built).
import { detectHost } from "../../src/detect/index.js";
import type { DiskReport, HostReport } from "../../src/detect/types.js";
import { buildSriovHost, buildVfioGpuHost, SysfsFixture } from "../helpers/sysfs-fixture.js";

export async function detectFixture(fx: SysfsFixture): Promise<HostReport> {
  return detectHost({ fs: fx.fs(), probe: { mode: "never" }, pciIds: null });
}

export const LAB = {
  mgmt: "eno1",
  mgmtPci: "0000:00:1f.6",
  audioPci: "0000:00:1f.3", // an endpoint in the management NIC's IOMMU group
  pchBridge: "0000:00:1c.0", // a PCI bridge in that group (exempt)
  sata: "0000:00:17.0", // the controller of the disk holding /
  usb: "0000:00:14.0", // shares the SATA controller's group
  x710: "0000:05:00.0",
} as const;

/**
 * A lab server: the SR-IOV I350 (enp3s0f0, 7 VFs), the GTX 1080 + HDMI audio in group 13 next to an
 * iGPU that is the boot VGA, the management NIC eno1 enslaved to br0 (default route) in group 20 with
 * an audio function and a bridge, a SATA controller (the root disk's) sharing group 21 with USB, and a
 * 10G X710 (i40e, no SR-IOV) with no link. It boots with GRUB and configures its network with netplan.
 */
export function buildLabHost(): SysfsFixture {
  const fx = buildVfioGpuHost(buildSriovHost(new SysfsFixture()));
  fx.pci({ address: LAB.pchBridge, vendor: "8086", device: "a338", class: "060400", driver: "pcieport" });
  fx.pci({ address: LAB.mgmtPci, vendor: "8086", device: "15bc", class: "020000", driver: "e1000e" });
  fx.pci({ address: LAB.audioPci, vendor: "8086", device: "a348", class: "040300", driver: "snd_hda_intel" });
  fx.iommuGroup(20, [LAB.pchBridge, LAB.mgmtPci, LAB.audioPci]);
  fx.pci({ address: LAB.sata, vendor: "8086", device: "a352", class: "010601", driver: "ahci" });
  fx.pci({ address: LAB.usb, vendor: "8086", device: "a36d", class: "0c0330", driver: "xhci_hcd" });
  fx.iommuGroup(21, [LAB.sata, LAB.usb]);
  fx.pci({
    address: LAB.x710,
    vendor: "8086",
    device: "1572",
    class: "020000",
    driver: "i40e",
    iommuGroup: 22,
  });
  fx.netdev({ name: LAB.mgmt, pci: LAB.mgmtPci, mac: "3c:ec:ef:00:00:01", speed: 1000 });
  fx.netdev({ name: "enp5s0", pci: LAB.x710, mac: "3c:fd:fe:00:00:01", operstate: "down" });
  fx.netdev({ name: "br0", kind: "bridge", mac: "3c:ec:ef:00:00:01" });
  fx.enslave(LAB.mgmt, "br0");
  fx.routes([{ iface: "br0", gateway: "0100000A", metric: 100 }]);
  fx.file(
    "/proc/cpuinfo",
    `processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu vme de pse msr pae vmx ept pdpe1gb\n\n`,
  );
  fx.file("/proc/meminfo", "MemTotal:       65859984 kB\nMemAvailable:   60000000 kB\n");
  // GRUB and netplan, so answers that change the kernel command line or the network can be planned.
  fx.file("/etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n');
  fx.file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");
  return fx;
}

export function disk(d: Partial<DiskReport> & { name: string }): DiskReport {
  return {
    path: `/dev/${d.name}`,
    sizeBytes: null,
    model: null,
    serial: null,
    wwn: null,
    byId: [],
    rotational: false,
    removable: false,
    readOnly: false,
    transport: "sata",
    pciAddress: null,
    virtual: false,
    partitions: [],
    holders: [],
    mountpoints: [],
    signatures: [],
    roles: [],
    sources: {},
    ...d,
  };
}

/** The lab server's disks: sda holds / and /boot on the SATA controller, two free data disks. */
export const LAB_DISKS: DiskReport[] = [
  disk({
    name: "sda",
    sizeBytes: 480_103_981_056,
    model: "INTEL SSDSC2KB480G8",
    serial: "PHYF000000AB480BGN",
    byId: ["/dev/disk/by-id/ata-INTEL_SSDSC2KB480G8_PHYF000000AB480BGN"],
    pciAddress: LAB.sata,
    roles: ["root", "boot"],
    mountpoints: ["/", "/boot"],
  }),
  disk({
    name: "sdb",
    sizeBytes: 4_000_787_030_016,
    model: "ST4000NM000A-2HZ100",
    serial: "WJG00001",
    byId: ["/dev/disk/by-id/ata-ST4000NM000A-2HZ100_WJG00001"],
    rotational: true,
    pciAddress: LAB.sata,
  }),
  disk({
    name: "nvme0n1",
    sizeBytes: 1_920_383_410_176,
    model: "SAMSUNG MZQL21T9HCJR-00A07",
    serial: "S64GNE0R000001",
    byId: [
      "/dev/disk/by-id/nvme-SAMSUNG_MZQL21T9HCJR-00A07_S64GNE0R000001",
      "/dev/disk/by-id/nvme-eui.002538b000000001",
    ],
    transport: "nvme",
    pciAddress: "0000:06:00.0",
  }),
];

let lab: Promise<HostReport> | undefined;

/** The lab server's report (detected once per process); callers get their own copy. */
export async function labReport(): Promise<HostReport> {
  lab ??= (async () => {
    const fx = buildLabHost();
    try {
      const r = await detectFixture(fx);
      return { ...r, disks: LAB_DISKS };
    } finally {
      fx.cleanup();
    }
  })();
  return structuredClone(await lab);
}
