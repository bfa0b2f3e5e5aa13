// The host report: every fact detection gathers, as plain JSON-serialisable data. A value of null
// means "unknown" (the file was absent or malformed); `sources` maps a field to the path it came from.
export type Sources = Record<string, string>;
export type TriState = "yes" | "no" | "unknown";

export type Warning = {
  path: string;
  message: string;
  /** Why a file was not read, when it was the reader that refused (loop, special, too-large...). */
  reason?: string;
};

export type FirmwareVirtLock = "enabled" | "locked-off" | "unknown";

export interface CpuReport {
  vendor: string | null; // GenuineIntel, AuthenticAMD; ARM, Ampere...; IBM
  model: string | null;
  /** uname -m of the machine: x86_64, aarch64, s390x...; "unknown" when nothing captured says. */
  architecture: string;
  sockets: number | null;
  cores: number | null; // physical cores across sockets
  threads: number | null; // logical CPUs listed in cpuinfo (online)
  onlineCpus: string | null; // kernel cpulist, e.g. "0-1"
  offlineCpus: string | null;
  flags: string[];
  virt: "vmx" | "svm" | null; // what /proc/cpuinfo shows (x86 only; null elsewhere)
  secondLevelPaging: TriState; // EPT (Intel) or NPT (AMD)
  pdpe1gb: boolean;
  hypervisor: boolean; // running as a guest itself
  firmwareVirt: FirmwareVirtLock; // from MSR 0x3A (Intel) or VM_CR (AMD)
  firmwareVirtDetail: string;
  sources: Sources;
}

export type ProbeVerdict = "usable" | "unusable" | "not-run" | "unavailable";

export interface KvmProbe {
  verdict: ProbeVerdict;
  /** What was run and what it showed, in one sentence. */
  detail: string;
  stages: { name: string; ok: boolean; ms: number; detail: string }[];
  cached: boolean;
}

export interface KvmReport {
  modules: Record<string, { loaded: boolean; parameters: Record<string, string> }>;
  /** null: unknown (a snapshot that did not capture /dev). */
  devKvm: { present: boolean | null; accessible: TriState };
  vhostNet: boolean | null;
  tun: boolean | null;
  probe: KvmProbe;
  sources: Sources;
}

export interface IommuGroup {
  id: number;
  devices: string[]; // PCI addresses
}

export interface IommuReport {
  acpiTable: "DMAR" | "IVRS" | "IORT" | null;
  acpiTablesReadable: boolean;
  cmdline: string | null;
  cmdlineParams: Record<string, string>; // intel_iommu, amd_iommu, iommu
  groupsPopulated: boolean;
  groups: IommuGroup[];
  interruptRemapping: TriState;
  sources: Sources;
}

export interface SriovInfo {
  /** sriov_totalvfs; when totalVfsKnown is false, the count of visible VFs (a lower bound). */
  totalVfs: number;
  numVfs: number;
  vfs: string[]; // PCI addresses of virtfnN
  /**
   * false: the snapshot lacks sriov_totalvfs, but virtfnN links show the function is SR-IOV capable,
   * so how many VFs it supports is unknown. Absent means known.
   */
  totalVfsKnown?: boolean;
}

export interface PciDevice {
  address: string; // 0000:00:02.0
  vendorId: string | null; // 8086; null when neither vendor nor modalias could be read
  deviceId: string | null;
  subsystemVendorId: string | null;
  subsystemDeviceId: string | null;
  vendorName: string | null;
  deviceName: string | null;
  classId: string | null; // 030000; null when neither class nor modalias could be read
  className: string | null;
  driver: string | null;
  driverOverride: string | null;
  numaNode: number | null;
  iommuGroup: number | null;
  bootVga: boolean | null;
  resetMethods: string[] | null;
  sriov: SriovInfo | null;
  physfn: string | null; // set on a VF
  parent: string | null; // upstream PCI bridge
  sources: Sources;
}

export interface NicReport {
  name: string | null; // null: the PCI function has no network interface in this report
  mac: string | null;
  pciAddress: string | null;
  driver: string | null;
  carrier: boolean | null;
  speedMbps: number | null;
  operstate: string | null;
  mtu: number | null;
  virtual: boolean; // bridge, veth, tap, bond...
  kind: string | null; // bridge, bond, vlan, veth, tun, physical, vf, wireless...
  master: string | null; // bridge or bond it belongs to
  sriov: SriovInfo | null;
  management: boolean; // carries the default route
  /** Carries the default route: "unknown" when no route table was captured (management is then false). */
  defaultRoute?: TriState;
  /** Set on an SR-IOV virtual function (kind "vf"): the PCI address of its physical function. */
  physfn?: string | null;
  sources: Sources;
}

export interface Partition {
  name: string;
  sizeBytes: number | null;
  mountpoints: string[];
  holders: string[];
  fstype: string | null;
  byId?: string[]; // /dev/disk/by-id links to this partition (set by detectDisks)
}

export interface DiskReport {
  name: string; // sda, nvme0n1
  path: string; // /dev/sda
  sizeBytes: number | null;
  model: string | null;
  serial: string | null;
  wwn: string | null;
  byId: string[]; // /dev/disk/by-id/...
  rotational: boolean | null;
  removable: boolean | null;
  readOnly: boolean | null;
  transport: string | null; // nvme, sata, virtio, usb...
  pciAddress: string | null; // controller
  virtual: boolean; // dm, loop, zram, md
  partitions: Partition[];
  holders: string[];
  mountpoints: string[];
  signatures: string[]; // filesystem/RAID/LVM/ZFS found on the disk or its partitions
  roles: ("root" | "boot" | "efi" | "boot-medium" | "swap")[];
  sources: Sources;
}

export interface NumaNode {
  id: number;
  cpus: string | null; // cpulist
  memoryKiB: number | null;
  hugepages: Record<string, { total: number; free: number }>; // keyed by "2048kB", "1048576kB"
  distances: number[];
}

export interface MemoryReport {
  totalKiB: number | null;
  availableKiB: number | null;
  hugepageSizeKiB: number | null;
  hugepages: Record<string, { total: number; free: number }>;
  numa: NumaNode[];
  thp: string | null; // the bracketed choice of transparent_hugepage/enabled
  ksm: { run: TriState; pagesSharing: number | null };
  sources: Sources;
}

export interface FirmwareReport {
  mode: "uefi" | "bios" | "unknown";
  secureBoot: TriState;
  system: { vendor: string | null; product: string | null; biosVersion: string | null };
  sources: Sources;
}

export interface CgroupReport {
  version: 1 | 2 | null;
  controllers: string[];
  sources: Sources;
}

export interface SystemReport {
  bootloader: "grub" | "systemd-boot" | "unknown";
  networkStack: "netplan" | "ifupdown2" | "ifupdown" | "networkd" | "networkmanager" | "unknown";
  /** The running kernel's command line, to verify a plan's parameters after the reboot. */
  cmdline: string | null;
  /** The zfs module is loaded: ZFS pools can be offered. */
  zfs: boolean;
  /** What regenerates grub.cfg, the boot entries and the initramfs here (absent: not detected). */
  bootTools?: BootTools;
  /**
   * Existing configuration files a plan may have to take over: GRUB drop-ins, networkd .network
   * and .netdev files, ifupdown interfaces.d files, NetworkManager profiles, netplan YAML. Host paths, sorted.
   */
  configFiles?: string[];
  sources: Sources;
}

export interface BootTools {
  /** grub.cfg generator: Debian's wrapper, or the RHEL-family / upstream grub-mkconfig. */
  grubMkconfig: "update-grub" | "grub2-mkconfig" | "grub-mkconfig" | null;
  /** The grub.cfg the generator must write (grub2-mkconfig/grub-mkconfig need -o). */
  grubCfg: string | null;
  /** Boot Loader Specification entries in /boot/loader/entries (RHEL-family GRUB, systemd-boot). */
  bls: boolean;
  grubby: boolean;
  initramfs: "update-initramfs" | "dracut" | null;
  kernelInstall: boolean;
  /** Proxmox VE keeps its ESPs (GRUB or systemd-boot) in sync with proxmox-boot-tool refresh. */
  proxmoxBootTool?: boolean;
}

export interface HostReport {
  schema: "kvmstrap.host-report/1";
  root: string;
  live: boolean;
  hostname: string | null;
  kernel: string | null;
  cpu: CpuReport;
  kvm: KvmReport;
  iommu: IommuReport;
  pci: PciDevice[];
  nics: NicReport[];
  disks: DiskReport[];
  memory: MemoryReport;
  firmware: FirmwareReport;
  cgroups: CgroupReport;
  system: SystemReport;
  warnings: Warning[];
}
