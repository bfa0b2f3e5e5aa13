// The host report: every fact detection gathers, as plain JSON-serialisable data. A value of null
// means "unknown" (the file was absent or malformed); `sources` maps a field to the path it came from.
// Defined once, as zod schemas with the TypeScript types inferred from them, so a report read back
// from disk (`answer validate --report`, a fleet node's upload) is checked against the same
// definition detection writes.
import { z } from "zod";
import { kvmProbe, probeVerdict } from "../host/kvm-probe-result.js";
import { storageClientsReport } from "./storage-clients.js";
import { vswitchReport } from "./vswitch.js";

export { kvmProbe, probeVerdict };

const str = z.string();
const strOrNull = z.string().nullable();
const intOrNull = z.number().int().nullable();

export const sources = z.record(z.string(), z.string());
export const triState = z.enum(["yes", "no", "unknown"]);

export const warning = z.object({
  path: str,
  message: str,
  /** Why a file was not read, when it was the reader that refused (loop, special, too-large...). */
  reason: str.optional(),
});

export const firmwareVirtLock = z.enum(["enabled", "locked-off", "unknown"]);

export const cpuReport = z.object({
  vendor: strOrNull, // GenuineIntel, AuthenticAMD; ARM, Ampere...; IBM
  model: strOrNull,
  /** uname -m of the machine: x86_64, aarch64, s390x...; "unknown" when nothing captured says. */
  architecture: str,
  sockets: intOrNull,
  cores: intOrNull, // physical cores across sockets
  threads: intOrNull, // logical CPUs listed in cpuinfo (online)
  onlineCpus: strOrNull, // kernel cpulist, e.g. "0-1"
  offlineCpus: strOrNull,
  flags: z.array(str),
  virt: z.enum(["vmx", "svm"]).nullable(), // what /proc/cpuinfo shows (x86 only; null elsewhere)
  secondLevelPaging: triState, // EPT (Intel) or NPT (AMD)
  pdpe1gb: z.boolean(),
  hypervisor: z.boolean(), // running as a guest itself
  firmwareVirt: firmwareVirtLock, // from MSR 0x3A (Intel) or VM_CR (AMD)
  firmwareVirtDetail: str,
  sources,
});

export const kvmReport = z.object({
  modules: z.record(str, z.object({ loaded: z.boolean(), parameters: z.record(str, str) })),
  /** null: unknown (a snapshot that did not capture /dev). */
  devKvm: z.object({ present: z.boolean().nullable(), accessible: triState }),
  vhostNet: z.boolean().nullable(),
  tun: z.boolean().nullable(),
  probe: kvmProbe,
  sources,
});

export const iommuGroup = z.object({
  id: z.number().int(),
  devices: z.array(str), // PCI addresses
});

export const iommuReport = z.object({
  acpiTable: z.enum(["DMAR", "IVRS", "IORT"]).nullable(),
  acpiTablesReadable: z.boolean(),
  cmdline: strOrNull,
  cmdlineParams: z.record(str, str), // intel_iommu, amd_iommu, iommu
  groupsPopulated: z.boolean(),
  groups: z.array(iommuGroup),
  interruptRemapping: triState,
  sources,
});

export const sriovInfo = z.object({
  /** sriov_totalvfs; when totalVfsKnown is false, the count of visible VFs (a lower bound). */
  totalVfs: z.number().int(),
  numVfs: z.number().int(),
  vfs: z.array(str), // PCI addresses of virtfnN
  /**
   * false: the snapshot lacks sriov_totalvfs, but virtfnN links show the function is SR-IOV capable,
   * so how many VFs it supports is unknown. Absent means known.
   */
  totalVfsKnown: z.boolean().optional(),
});

export const pciDevice = z.object({
  address: str, // 0000:00:02.0
  vendorId: strOrNull, // 8086; null when neither vendor nor modalias could be read
  deviceId: strOrNull,
  subsystemVendorId: strOrNull,
  subsystemDeviceId: strOrNull,
  vendorName: strOrNull,
  deviceName: strOrNull,
  classId: strOrNull, // 030000; null when neither class nor modalias could be read
  className: strOrNull,
  driver: strOrNull,
  driverOverride: strOrNull,
  numaNode: intOrNull,
  iommuGroup: intOrNull,
  bootVga: z.boolean().nullable(),
  resetMethods: z.array(str).nullable(),
  sriov: sriovInfo.nullable(),
  physfn: strOrNull, // set on a VF
  parent: strOrNull, // upstream PCI bridge
  sources,
});

/** One address of an interface, as the kernel holds it (ip -j addr): family, address, prefix length. */
export const nicAddress = z.object({
  family: z.enum(["inet", "inet6"]),
  address: str,
  prefixLength: z.number().int(),
  scope: strOrNull, // global, link, host...
});

export const nicReport = z.object({
  name: strOrNull, // null: the PCI function has no network interface in this report
  mac: strOrNull,
  pciAddress: strOrNull,
  driver: strOrNull,
  carrier: z.boolean().nullable(),
  speedMbps: z.number().nullable(),
  operstate: strOrNull,
  mtu: intOrNull,
  virtual: z.boolean(), // bridge, veth, tap, bond...
  kind: strOrNull, // bridge, bond, vlan, veth, tun, physical, vf, wireless...
  master: strOrNull, // bridge or bond it belongs to
  sriov: sriovInfo.nullable(),
  management: z.boolean(), // carries the default route
  /** Carries the default route: "unknown" when no route table was captured (management is then false). */
  defaultRoute: triState.optional(),
  /** Set on an SR-IOV virtual function (kind "vf"): the PCI address of its physical function. */
  physfn: strOrNull.optional(),
  /**
   * IPv4 and IPv6 addresses: "unknown" where they could not be read (a snapshot, no `ip`), never an
   * empty list, which means the interface has none. Absent in reports saved before it: unknown.
   */
  addresses: z.union([z.literal("unknown"), z.array(nicAddress)]).optional(),
  sources,
});

export const partition = z.object({
  name: str,
  sizeBytes: z.number().nullable(),
  mountpoints: z.array(str),
  holders: z.array(str),
  fstype: strOrNull,
  byId: z.array(str).optional(), // /dev/disk/by-id links to this partition (set by detectDisks)
});

export const diskRole = z.enum(["root", "boot", "efi", "boot-medium", "swap"]);

export const diskReport = z.object({
  name: str, // sda, nvme0n1
  path: str, // /dev/sda
  sizeBytes: z.number().nullable(),
  model: strOrNull,
  serial: strOrNull,
  wwn: strOrNull,
  byId: z.array(str), // /dev/disk/by-id/...
  rotational: z.boolean().nullable(),
  removable: z.boolean().nullable(),
  readOnly: z.boolean().nullable(),
  transport: strOrNull, // nvme, sata, virtio, usb...
  pciAddress: strOrNull, // controller
  virtual: z.boolean(), // dm, loop, zram, md
  partitions: z.array(partition),
  holders: z.array(str),
  mountpoints: z.array(str),
  signatures: z.array(str), // filesystem/RAID/LVM/ZFS found on the disk or its partitions
  roles: z.array(diskRole),
  sources,
});

const hugepageCounts = z.record(str, z.object({ total: z.number(), free: z.number() })); // "2048kB"...

export const numaNode = z.object({
  id: z.number().int(),
  cpus: strOrNull, // cpulist
  memoryKiB: z.number().nullable(),
  hugepages: hugepageCounts, // keyed by "2048kB", "1048576kB"
  distances: z.array(z.number()),
});

export const memoryReport = z.object({
  totalKiB: z.number().nullable(),
  availableKiB: z.number().nullable(),
  hugepageSizeKiB: z.number().nullable(),
  hugepages: hugepageCounts,
  numa: z.array(numaNode),
  thp: strOrNull, // the bracketed choice of transparent_hugepage/enabled
  ksm: z.object({ run: triState, pagesSharing: z.number().nullable() }),
  sources,
});

export const firmwareReport = z.object({
  mode: z.enum(["uefi", "bios", "unknown"]),
  secureBoot: triState,
  system: z.object({ vendor: strOrNull, product: strOrNull, biosVersion: strOrNull }),
  sources,
});

export const cgroupReport = z.object({
  version: z.union([z.literal(1), z.literal(2)]).nullable(),
  controllers: z.array(str),
  sources,
});

export const bootTools = z.object({
  /** grub.cfg generator: Debian's wrapper, or the RHEL-family / upstream grub-mkconfig. */
  grubMkconfig: z.enum(["update-grub", "grub2-mkconfig", "grub-mkconfig"]).nullable(),
  /** The grub.cfg the generator must write (grub2-mkconfig/grub-mkconfig need -o). */
  grubCfg: strOrNull,
  /** Boot Loader Specification entries in /boot/loader/entries (RHEL-family GRUB, systemd-boot). */
  bls: z.boolean(),
  grubby: z.boolean(),
  initramfs: z.enum(["update-initramfs", "dracut"]).nullable(),
  kernelInstall: z.boolean(),
  /** Proxmox VE keeps its ESPs (GRUB or systemd-boot) in sync with proxmox-boot-tool refresh. */
  proxmoxBootTool: z.boolean().optional(),
});

export const systemReport = z.object({
  bootloader: z.enum(["grub", "systemd-boot", "unknown"]),
  networkStack: z.enum(["netplan", "ifupdown2", "ifupdown", "networkd", "networkmanager", "unknown"]),
  /** The running kernel's command line, to verify a plan's parameters after the reboot. */
  cmdline: strOrNull,
  /** The zfs module is loaded: ZFS pools can be offered. */
  zfs: z.boolean(),
  /** What regenerates grub.cfg, the boot entries and the initramfs here (absent: not detected). */
  bootTools: bootTools.optional(),
  /**
   * Existing configuration files a plan may have to take over: GRUB drop-ins, networkd .network
   * and .netdev files, ifupdown interfaces.d files, NetworkManager profiles, netplan YAML. Host paths, sorted.
   */
  configFiles: z.array(str).optional(),
  sources,
});

/**
 * Which disks hold the running system. known: false when a mount the running system needs (/, /boot,
 * the ESP, the boot medium) could not be tied to a disk in /sys/block (multipath, a device only a
 * missing dm name would resolve), or there was no mount table: then no disk is known to be free of
 * it, and nothing may be wiped. `reason` says which mount and why (the source file first).
 */
export const rootDiskReport = z.object({
  known: z.boolean(),
  /** The disks holding / (empty when / is not on a block device, e.g. a live system's overlay). */
  disks: z.array(str),
  reason: strOrNull,
});

export const storageReport = z.object({ rootDisk: rootDiskReport });

export const HOST_REPORT_SCHEMA = "kvmstrap.host-report/1";

/** The medium a live system booted from (detect/boot-medium.ts): its disks by identity. */
export const bootMediumReport = z.object({
  /** live-boot is on the kernel command line (the appliance). */
  live: z.boolean(),
  /** The live medium's mount ("/dev/sr0 on /run/live/medium"), or null when none is mounted. */
  mount: strOrNull,
  disks: z.array(
    z.object({
      name: str,
      serial: strOrNull,
      wwn: strOrNull,
      byId: z.array(str),
      sizeBytes: z.number().nullable(),
      fsUuids: z.array(str),
      reason: str,
    }),
  ),
});

export const hostReport = z.object({
  schema: z.literal(HOST_REPORT_SCHEMA),
  root: str,
  live: z.boolean(),
  hostname: strOrNull,
  kernel: strOrNull,
  cpu: cpuReport,
  kvm: kvmReport,
  iommu: iommuReport,
  pci: z.array(pciDevice),
  nics: z.array(nicReport),
  disks: z.array(diskReport),
  /** Absent in reports saved before it existed: read as "unknown" (detection always sets it). */
  storage: storageReport.optional(),
  memory: memoryReport,
  firmware: firmwareReport,
  cgroups: cgroupReport,
  system: systemReport,
  /** Present on a live system or where a boot medium was seen; absent on an installed machine. */
  bootMedium: bootMediumReport.optional(),
  /** Open vSwitch's kernel module and bridge VLAN filtering; absent in reports saved before it. */
  vswitch: vswitchReport.optional(),
  /** The kernel's iSCSI initiator and NFS client (shared stores' mode: auto); absent in older reports. */
  storageClients: storageClientsReport.optional(),
  warnings: z.array(warning),
});

export type Sources = z.infer<typeof sources>;
export type TriState = z.infer<typeof triState>;
export type Warning = z.infer<typeof warning>;
export type FirmwareVirtLock = z.infer<typeof firmwareVirtLock>;
export type CpuReport = z.infer<typeof cpuReport>;
export type ProbeVerdict = z.infer<typeof probeVerdict>;
export type KvmProbe = z.infer<typeof kvmProbe>;
export type KvmReport = z.infer<typeof kvmReport>;
export type IommuGroup = z.infer<typeof iommuGroup>;
export type IommuReport = z.infer<typeof iommuReport>;
export type SriovInfo = z.infer<typeof sriovInfo>;
export type PciDevice = z.infer<typeof pciDevice>;
export type NicReport = z.infer<typeof nicReport>;
export type NicAddress = z.infer<typeof nicAddress>;
export type Partition = z.infer<typeof partition>;
export type DiskReport = z.infer<typeof diskReport>;
export type NumaNode = z.infer<typeof numaNode>;
export type MemoryReport = z.infer<typeof memoryReport>;
export type FirmwareReport = z.infer<typeof firmwareReport>;
export type CgroupReport = z.infer<typeof cgroupReport>;
export type SystemReport = z.infer<typeof systemReport>;
export type BootTools = z.infer<typeof bootTools>;
export type HostReport = z.infer<typeof hostReport>;
export type RootDiskReport = z.infer<typeof rootDiskReport>;
export type BootMediumReport = z.infer<typeof bootMediumReport>;
