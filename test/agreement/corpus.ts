// The agreement corpus: answers, each on a host (a synthetic tree or a real-machine snapshot, some
// with one stated change), with the rule ids validate must report as errors, in registry order, at
// their key paths. The plan must refuse exactly these; where the TUI can make the same choice, `tui`
// names it and the TUI must report the first of them (or nothing). Expectations are written by hand
// from the host's facts (see the comment on each host), not recorded from a run.
import type { Answer, AnswerInput, NicMatch } from "../../src/answer/schema.js";
import type { HostReport } from "../../src/detect/types.js";
import { LAB } from "../answer/hosts.js";
import { DMAR_BRIDGE, SRIOV, VFIO } from "../helpers/sysfs-fixture.js";

/**
 * lab: the answer tests' server (GRUB, netplan, 63 GiB, one NUMA node): eno1 management NIC in IOMMU
 *   group 20 with an audio function and a PCI bridge; sda (root, boot) on the SATA controller, which
 *   shares group 21 with USB; sdb and nvme0n1 blank; the I350 PF enp3s0f0 (7 VFs, 2 enabled);
 *   enp5s0 (X710, no SR-IOV); the iGPU (boot VGA, group 0) and a GTX 1080 + audio (group 13).
 * dmar: IOMMU off (DMAR table, no groups), GRUB and netplan; eno1 management in br0, enp2s0 spare.
 * ryzen: snapshot; no mount table (root disk unknown), one GPU 0000:0a:00.0 with boot_vga unread,
 *   IOMMU groups not built, no bootloader or network stack found, sda/sdb/sdc partitioned.
 * laptop: snapshot; iGPU 0000:00:02.0 alone in group 0 (boot_vga unread), nvme0n1 at 0000:04:00.0
 *   holds /boot and the ESP, / on LUKS (root disk unknown), a wireless NIC without an interface.
 * server: snapshot of a small VM (1.9 GiB), virtio devices only, no IOMMU groups.
 * guest: snapshot of a KVM guest with no PCI devices visible.
 */
/** An answer file without its version line (the test adds `version: 1`). */
export type AnswerBody = Omit<AnswerInput, "version">;

export type HostKey = "lab" | "dmar" | "ryzen" | "laptop" | "server" | "guest";

/** A choice made on a TUI screen; the case's answer is the draft that choice makes. */
export type TuiChoice =
  | { kind: "passthrough"; addresses: string[] }
  | { kind: "disk"; disk: string; wipe: boolean }
  | { kind: "sriov"; pf: NicMatch; numVfs: number }
  | { kind: "bond"; before: AnswerBody; nic: NicMatch }
  | { kind: "uplink"; nic: NicMatch };

export interface Case {
  name: string;
  host: HostKey;
  /** One stated change to the host's report (a mounted disk, a second NUMA node...). */
  variant?: (r: HostReport) => void;
  /** The answer (schema-valid), or for TUI cases the draft the choice makes (built by the test). */
  answer?: AnswerBody;
  tui?: TuiChoice;
  /** A change to the parsed answer that the schema would refuse (for answers built in code). */
  mutate?: (a: Answer) => void;
  /** `ruleId path` of every error, in registry order. */
  errors: string[];
  /** Warning rule ids, when the case is about one. */
  warnings?: string[];
}

const pool = (disks: object[], extra: object = {}): AnswerBody =>
  ({ storage: { pools: [{ name: "vmpool", type: "lvm-thin", disks, ...extra }] } }) as AnswerBody;
const vm = (extra: Record<string, unknown> = {}) => ({
  name: "web1",
  image: "debian-12",
  vcpus: 2,
  memoryMiB: 2048,
  diskGiB: 10,
  user: { name: "ops" },
  nics: [{ bridge: "br0" }],
  ...extra,
});
/** Two members on 192.0.2.0/24, kvm-a (the lab host under that name) and kvm-b. */
const clusterOf = () => ({
  name: "rack1",
  networks: { cluster: "192.0.2.0/24" },
  members: [
    { host: "kvm-a", address: "192.0.2.11" },
    { host: "kvm-b", address: "192.0.2.12" },
  ],
});
const disk = (r: HostReport, name: string) => r.disks.find((d) => d.name === name);
const GiB = 1024 ** 2; // in KiB

export const CASES: Case[] = [
  // ---- passthrough ------------------------------------------------------------------------------
  { name: "nothing asked, nothing refused", host: "lab", answer: {}, errors: [] },
  {
    name: "the GTX 1080 with its audio: the whole group",
    host: "lab",
    tui: { kind: "passthrough", addresses: [VFIO.gpu, VFIO.audio] },
    errors: [],
  },
  {
    name: "the GPU alone leaves its audio function behind in group 13",
    host: "lab",
    answer: { passthrough: [{ device: { address: VFIO.gpu } }] },
    errors: ["passthrough.group-incomplete passthrough[0].device"],
  },
  {
    name: "the management NIC's group: the NIC itself, and the audio function beside it",
    host: "lab",
    tui: { kind: "passthrough", addresses: [LAB.mgmtPci, LAB.audioPci] },
    errors: [
      "passthrough.management-nic passthrough[0].device",
      "passthrough.group-hazard passthrough[1].device",
    ],
  },
  {
    name: "an endpoint sharing a group with the management NIC",
    host: "lab",
    answer: { passthrough: [{ device: { address: LAB.audioPci } }] },
    errors: ["passthrough.group-hazard passthrough[0].device"],
  },
  {
    name: "the root disk's SATA controller and the USB controller in its group",
    host: "lab",
    tui: { kind: "passthrough", addresses: [LAB.sata, LAB.usb] },
    errors: [
      "passthrough.boot-disk-controller passthrough[0].device",
      "passthrough.group-hazard passthrough[1].device",
    ],
  },
  {
    name: "a PCI bridge is never passed through",
    host: "lab",
    tui: { kind: "passthrough", addresses: [LAB.pchBridge] },
    errors: ["passthrough.pci-bridge passthrough[0].device"],
  },
  {
    name: "the boot VGA with a second GPU: planned, with a warning",
    host: "lab",
    tui: { kind: "passthrough", addresses: [VFIO.igpu] },
    errors: [],
    warnings: ["passthrough.boot-vga"],
  },
  {
    name: "the only GPU, boot_vga unread",
    host: "lab",
    variant: (r) => {
      r.pci = r.pci.filter((p) => p.address !== VFIO.gpu && p.address !== VFIO.audio);
      for (const p of r.pci) if (p.address === VFIO.igpu) p.bootVga = null;
    },
    tui: { kind: "passthrough", addresses: [VFIO.igpu] },
    errors: ["passthrough.only-gpu passthrough[0].device"],
  },
  {
    name: "the only GPU, boot_vga 0",
    host: "lab",
    variant: (r) => {
      r.pci = r.pci.filter((p) => p.address !== VFIO.igpu);
    },
    tui: { kind: "passthrough", addresses: [VFIO.gpu, VFIO.audio] },
    errors: ["passthrough.only-gpu passthrough[0].device"],
  },
  {
    name: "devices whose vendor:device could not be read: the boot-time bind cannot re-check them",
    host: "lab",
    variant: (r) => {
      for (const p of r.pci) if (p.address === VFIO.gpu || p.address === VFIO.audio) p.deviceId = null;
    },
    tui: { kind: "passthrough", addresses: [VFIO.gpu, VFIO.audio] },
    errors: [
      "passthrough.unknown-ids passthrough[0].device",
      "passthrough.unknown-ids passthrough[1].device",
    ],
  },
  {
    name: "a pick that does not apply to PCI devices",
    host: "lab",
    answer: { passthrough: [{ device: { class: "0300", pick: "largest" } }] },
    errors: ["match.invalid passthrough[0].device"],
  },
  {
    name: "a class rule matching both GPUs without a pick",
    host: "lab",
    answer: { passthrough: [{ device: { class: "0300" } }] },
    errors: ["match.several passthrough[0].device"],
  },
  {
    name: "IOMMU off and not enabled by the answer",
    host: "dmar",
    answer: { passthrough: [{ device: { address: DMAR_BRIDGE.otherPci } }] },
    errors: ["passthrough.iommu-off passthrough"],
  },
  {
    name: "IOMMU off, enabled by the answer (the TUI's draft): a reboot warning",
    host: "dmar",
    tui: { kind: "passthrough", addresses: [DMAR_BRIDGE.otherPci] },
    errors: [],
    warnings: ["passthrough.iommu-off"],
  },
  {
    name: "the Ryzen's only GPU (boot_vga unread) on a host whose bootloader is unknown",
    host: "ryzen",
    tui: { kind: "passthrough", addresses: ["0000:0a:00.0"] },
    errors: ["passthrough.only-gpu passthrough[0].device", "kernel.bootloader-unknown iommu"],
    warnings: ["passthrough.iommu-off"],
  },
  {
    name: "the laptop's only GPU, alone in group 0",
    host: "laptop",
    tui: { kind: "passthrough", addresses: ["0000:00:02.0"] },
    errors: ["passthrough.only-gpu passthrough[0].device"],
  },
  {
    name: "the laptop's NVMe controller holds /boot and the ESP",
    host: "laptop",
    tui: { kind: "passthrough", addresses: ["0000:04:00.0"] },
    errors: ["passthrough.boot-disk-controller passthrough[0].device"],
  },
  {
    name: "a guest with no PCI devices: the rule matches nothing",
    host: "guest",
    answer: { passthrough: [{ device: { class: "03" } }] },
    errors: ["match.none passthrough[0].device", "passthrough.iommu-off passthrough"],
  },
  // ---- SR-IOV -----------------------------------------------------------------------------------
  {
    name: "four VFs on the I350",
    host: "lab",
    tui: { kind: "sriov", pf: { name: SRIOV.pfName }, numVfs: 4 },
    errors: [],
  },
  {
    name: "more VFs than sriov_totalvfs",
    host: "lab",
    tui: { kind: "sriov", pf: { name: SRIOV.pfName }, numVfs: 9 },
    errors: ["sriov.total-vfs sriov[0].numVfs"],
  },
  {
    name: "VFs on the management NIC (which has no SR-IOV either)",
    host: "lab",
    tui: { kind: "sriov", pf: { name: LAB.mgmt }, numVfs: 2 },
    errors: ["sriov.management-pf sriov[0].pf", "sriov.capable sriov[0].pf"],
  },
  {
    name: "the X710 has no SR-IOV capability here",
    host: "lab",
    tui: { kind: "sriov", pf: { name: "enp5s0" }, numVfs: 2 },
    errors: ["sriov.capable sriov[0].pf"],
  },
  {
    name: "sriov_totalvfs not captured but VFs in view: capable, total unknown (a warning)",
    host: "lab",
    variant: (r) => {
      for (const p of r.pci) if (p.address === SRIOV.pf) p.sriov = null;
      for (const n of r.nics) if (n.pciAddress === SRIOV.pf) n.sriov = null;
    },
    tui: { kind: "sriov", pf: { name: SRIOV.pfName }, numVfs: 4 },
    errors: [],
    warnings: ["sriov.capable"],
  },
  {
    name: "detection's own form of an unread total (the visible VFs as a lower bound): a warning, not a cap",
    host: "lab",
    variant: (r) => {
      const lowerBound = { totalVfs: 2, numVfs: 2, vfs: [...SRIOV.vfs], totalVfsKnown: false };
      for (const p of r.pci) if (p.address === SRIOV.pf) p.sriov = lowerBound;
      for (const n of r.nics) if (n.pciAddress === SRIOV.pf) n.sriov = lowerBound;
    },
    tui: { kind: "sriov", pf: { name: SRIOV.pfName }, numVfs: 4 },
    errors: [],
    warnings: ["sriov.capable"],
  },
  {
    name: "settings for a VF that numVfs does not create",
    host: "lab",
    answer: { sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 2, vfs: [{ index: 5, trust: true }] }] },
    errors: ["sriov.vf-index sriov[0].vfs[0].index"],
  },
  {
    name: "two entries for one PF",
    host: "lab",
    answer: {
      sriov: [
        { pf: { name: SRIOV.pfName }, numVfs: 2 },
        { pf: { driver: "igb" }, numVfs: 3 },
      ],
    },
    errors: ["sriov.duplicate-pf sriov[1].pf"],
  },
  {
    name: "a hostdevNetwork name climbing out of /etc/kvmstrap (built in code, past the schema)",
    host: "lab",
    answer: { sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 2, hostdevNetwork: "pool" }] },
    mutate: (a) => {
      const entry = a.sriov[0];
      if (entry) entry.hostdevNetwork = "../../../etc/cron.d/x";
    },
    errors: ["names.grammar sriov[0].hostdevNetwork"],
  },
  // ---- storage ----------------------------------------------------------------------------------
  {
    name: "wiping the disk that holds /",
    host: "lab",
    tui: { kind: "disk", disk: "sda", wipe: true },
    errors: ["storage.disk-in-use storage.pools[0].disks[0]"],
  },
  {
    name: "a blank data disk, wiped",
    host: "lab",
    tui: { kind: "disk", disk: "sdb", wipe: true },
    errors: [],
  },
  {
    name: "a blank data disk, kept",
    host: "lab",
    tui: { kind: "disk", disk: "nvme0n1", wipe: false },
    errors: [],
  },
  {
    name: "a partitioned disk is not free without a wipe",
    host: "lab",
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) d.partitions = [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: "ext4" }];
    },
    tui: { kind: "disk", disk: "sdb", wipe: false },
    errors: ["storage.not-blank storage.pools[0].disks[0]"],
  },
  {
    name: "a partitioned disk, wiped",
    host: "lab",
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) d.partitions = [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: "ext4" }];
    },
    tui: { kind: "disk", disk: "sdb", wipe: true },
    errors: [],
  },
  {
    name: "a mounted disk",
    host: "lab",
    variant: (r) => void disk(r, "sdb")?.mountpoints.push("/srv"),
    tui: { kind: "disk", disk: "sdb", wipe: true },
    errors: ["storage.disk-in-use storage.pools[0].disks[0]"],
  },
  {
    name: "a disk held by device-mapper",
    host: "lab",
    variant: (r) => void disk(r, "sdb")?.holders.push("dm-3"),
    tui: { kind: "disk", disk: "sdb", wipe: false },
    errors: ["storage.disk-in-use storage.pools[0].disks[0]"],
  },
  {
    name: "two paths to one LUN (same WWN): multipath members",
    host: "lab",
    variant: (r) => {
      for (const d of r.disks) if (d.name === "sdb" || d.name === "nvme0n1") d.wwn = "naa.5000c500a1b2c3d4";
    },
    tui: { kind: "disk", disk: "sdb", wipe: true },
    errors: ["storage.disk-in-use storage.pools[0].disks[0]"],
  },
  {
    name: "detection cannot tell which disk holds / (multipath root): no wipe at all",
    host: "lab",
    variant: (r) => {
      for (const d of r.disks) d.roles = [];
      // What detection reports for it: the fact the rules read (the warning is for people).
      const message =
        "cannot tell which disk holds / (/dev/mapper/mpatha-part2): no block device or dm name ties it to /sys/block; its disk is not marked";
      r.warnings.push({ path: "/proc/self/mounts", message });
      r.storage = { rootDisk: { known: false, disks: [], reason: `/proc/self/mounts: ${message}` } };
    },
    tui: { kind: "disk", disk: "sdb", wipe: true },
    errors: ["storage.root-unknown storage.pools[0].wipe"],
  },
  {
    name: "the same host without a wipe: a blank disk can still join",
    host: "lab",
    variant: (r) => {
      const message = "cannot tell which disk holds / (/dev/mapper/mpatha-part2)";
      r.warnings.push({ path: "/proc/self/mounts", message });
      r.storage = { rootDisk: { known: false, disks: [], reason: `/proc/self/mounts: ${message}` } };
    },
    tui: { kind: "disk", disk: "sdb", wipe: false },
    errors: [],
  },
  {
    name: "two pools with one name, and one disk in both",
    host: "lab",
    answer: {
      storage: {
        pools: [
          { name: "vmpool", type: "lvm-thin", disks: [{ serial: "WJG00001" }] },
          { name: "vmpool", type: "lvm-thin", disks: [{ byId: "ata-ST4000NM000A-2HZ100_WJG00001" }] },
        ],
      },
    },
    errors: ["storage.pool-name storage.pools[1].name", "storage.disk-claimed storage.pools[1].disks[0]"],
  },
  {
    name: "a wipe of a disk picked by rotational: not named by byId or serial",
    host: "lab",
    answer: pool([{ rotational: true }], { wipe: true }),
    errors: ["storage.wipe-named storage.pools[0].disks[0]"],
  },
  {
    name: "a zfs pool without the zfs module, and a dir pool without a path",
    host: "lab",
    answer: {
      storage: {
        pools: [
          { name: "tank", type: "zfs", disks: [{ serial: "WJG00001" }] },
          { name: "images", type: "dir" },
        ],
      },
    },
    errors: ["storage.pool-shape storage.pools[1]", "storage.zfs-missing storage.pools[0].type"],
  },
  {
    name: "the Ryzen (no mount table): a wipe of its largest disk",
    host: "ryzen",
    answer: pool([{ largest: true }], { wipe: true }),
    errors: ["storage.wipe-named storage.pools[0].disks[0]", "storage.root-unknown storage.pools[0].wipe"],
  },
  {
    name: "the laptop (/ on LUKS, which detection cannot tie to a disk): its only disk, wiped",
    host: "laptop",
    answer: pool([{ pick: "first" }], { wipe: true }),
    errors: [
      "storage.disk-in-use storage.pools[0].disks[0]",
      "storage.wipe-named storage.pools[0].disks[0]",
      "storage.root-unknown storage.pools[0].wipe",
    ],
  },
  {
    name: "the Ryzen's partitioned disk is not free",
    host: "ryzen",
    answer: pool([{ largest: true }]),
    errors: ["storage.not-blank storage.pools[0].disks[0]"],
  },
  // ---- network and bonds ------------------------------------------------------------------------
  {
    name: "a bridge over the management NIC",
    host: "lab",
    tui: { kind: "uplink", nic: { name: LAB.mgmt } },
    errors: [],
  },
  {
    name: "a bond of a spare NIC",
    host: "lab",
    tui: { kind: "bond", before: {}, nic: { name: "enp5s0" } },
    errors: [],
  },
  {
    name: "the management NIC in a bond",
    host: "lab",
    tui: { kind: "bond", before: {}, nic: { name: LAB.mgmt } },
    errors: ["network.bond-management network.bonds[0].interfaces[0]"],
  },
  {
    name: "the bridge uplink in a bond too",
    host: "lab",
    tui: {
      kind: "bond",
      before: { network: { bridges: [{ name: "br0", addresses: "dhcp", uplink: { name: "enp5s0" } }] } },
      nic: { name: "enp5s0" },
    },
    errors: ["network.claimed-twice network.bonds[0].interfaces[0]"],
  },
  {
    name: "a bridge and a bond with one name, and a port naming a bond that does not exist",
    host: "lab",
    answer: {
      network: {
        bridges: [{ name: "br1", ports: [{ bond: "bond9" }] }],
        bonds: [{ name: "br1", mode: "active-backup", interfaces: [{ name: "enp5s0" }] }],
      },
    },
    errors: [
      "network.duplicate-name network.bonds[0].name",
      "network.bond-undefined network.bridges[0].ports[0].bond",
    ],
  },
  {
    name: "an uplink rule matching nothing",
    host: "lab",
    answer: { network: { bridges: [{ name: "br0", uplink: { driver: "mlx5_core" } }] } },
    errors: ["match.none network.bridges[0].uplink"],
  },
  {
    name: "a VLAN on a bridge this file does not define",
    host: "lab",
    answer: { network: { vlans: [{ name: "v7", id: 7, link: "br9" }] } },
    errors: ["network.vlan-link network.vlans[0].link"],
  },
  {
    name: "the laptop's wireless function has no interface, and no network stack was found",
    host: "laptop",
    tui: { kind: "uplink", nic: { pci: "0000:00:14.3" } },
    errors: ["network.no-interface network.bridges[0].uplink", "network.stack-unknown network.stack"],
  },
  {
    name: "a bridge on the Ryzen: no network stack recognised",
    host: "ryzen",
    answer: { network: { bridges: [{ name: "br0", uplink: { name: "enp3s0" } }] } },
    errors: ["network.stack-unknown network.stack"],
  },
  // ---- virtual networks: libvirt networks, Open vSwitch, VLANs ----------------------------------
  {
    name: "VLAN ids 0 and 4095, and a trunk with a tag too, on an OVS bridge",
    host: "lab",
    answer: {
      network: { ovs: [{ name: "ovsbr0" }] },
      vms: [
        vm({
          nics: [
            { ovs: "ovsbr0", vlan: 0 },
            { ovs: "ovsbr0", vlan: 10, trunk: [4095] },
          ],
        }),
      ],
    },
    errors: [
      "vnet.vlan-id vms[0].nics[0].vlan",
      "vnet.vlan-id vms[0].nics[1].trunk[0]",
      "vnet.ovs-port vms[0].nics[1]",
    ],
  },
  {
    name: "an OVS NIC on a host's own OVS bridge (the answer makes none): a warning",
    host: "lab",
    answer: { vms: [vm({ nics: [{ ovs: "ovsbr9", trunk: [10, 20] }] })] },
    errors: [],
    warnings: ["vnet.ovs-port"],
  },
  {
    name: "an OVS NIC on a bridge the file does not define, a libvirt network it does not define",
    host: "lab",
    answer: {
      network: { ovs: [{ name: "ovsbr0" }] },
      vms: [vm({ nics: [{ ovs: "ovsbr9", vlan: 10 }, { network: "elsewhere" }] })],
    },
    errors: ["vnet.ovs-port vms[0].nics[0].ovs"],
    warnings: ["vnet.vm-network"],
  },
  {
    name: "a VLAN-aware bridge and a VM VLAN on a kernel without bridge VLAN filtering",
    host: "lab",
    variant: (r) => {
      r.vswitch = { ovsModule: false, bridgeVlanFiltering: false, sources: {} };
    },
    answer: {
      network: { bridges: [{ name: "br1", vlanAware: true }] },
      vms: [vm({ nics: [{ bridge: "br1", vlan: 30 }] })],
    },
    errors: ["vnet.bridge-vlan network.bridges[0].vlanAware", "vnet.bridge-vlan vms[0].nics[0].vlan"],
  },
  {
    name: "the OVS kernel datapath without the module, the management NIC as its uplink",
    host: "lab",
    variant: (r) => {
      r.vswitch = { ovsModule: false, bridgeVlanFiltering: false, sources: {} };
    },
    answer: { network: { ovs: [{ name: "ovsbr0", datapath: "system", uplink: LAB.mgmt }] } },
    errors: ["vnet.ovs-datapath network.ovs[0].datapath", "vnet.ovs-uplink network.ovs[0].uplink"],
  },
  {
    name: "an OVS bridge named like a Linux bridge, a libvirt DHCP range outside its subnet",
    host: "lab",
    answer: {
      network: {
        bridges: [{ name: "br1" }],
        libvirt: [
          {
            name: "natnet",
            mode: "nat",
            bridge: "virbr10",
            address: "192.168.100.1/24",
            dhcpRange: ["192.168.101.10", "192.168.101.20"],
          },
        ],
        ovs: [{ name: "br1" }],
      },
    },
    errors: ["vnet.duplicate-name network.ovs[0].name", "vnet.subnet network.libvirt[0].dhcpRange"],
  },
  // ---- one device, one job ----------------------------------------------------------------------
  {
    name: "the I350 PF as bridge uplink, SR-IOV PF and passthrough device at once",
    host: "lab",
    answer: {
      network: { bridges: [{ name: "br1", uplink: { name: SRIOV.pfName } }] },
      sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 2 }],
      passthrough: [{ device: { address: SRIOV.pf } }],
    },
    errors: ["roles.conflict passthrough[0].device"],
  },
  {
    name: "a VM's macvtap NIC passed through to another VM",
    host: "lab",
    answer: {
      vms: [
        vm({ nics: [{ macvtap: { name: "enp5s0" } }] }),
        vm({ name: "web2", passthrough: [{ address: LAB.x710 }] }),
      ],
    },
    errors: ["roles.conflict vms[1].passthrough[0]"],
    warnings: ["vms.passthrough"],
  },
  // ---- memory -----------------------------------------------------------------------------------
  {
    name: "2 GiB of 2 MiB pages on the lab's 63 GiB",
    host: "lab",
    answer: { kvm: { hugepages: { pages2M: 1024 } } },
    errors: [],
  },
  {
    name: "10^12 one-GiB pages",
    host: "lab",
    answer: { kvm: { hugepages: { pages1G: 1e12 } } },
    errors: ["memory.hugepages kvm.hugepages.pages1G"],
  },
  {
    name: "142 GiB of hugepages on a 63 GiB host",
    host: "lab",
    answer: { kvm: { hugepages: { pages1G: 142 } } },
    errors: ["memory.hugepages kvm.hugepages.pages1G"],
  },
  {
    name: "40 GiB fits the host but not its 16 GiB NUMA node (pages spread evenly)",
    host: "lab",
    variant: (r) => {
      r.memory.numa = [
        { id: 0, cpus: "0-7", memoryKiB: 47 * GiB, hugepages: {}, distances: [10, 21] },
        { id: 1, cpus: "8-15", memoryKiB: 16 * GiB, hugepages: {}, distances: [21, 10] },
      ];
    },
    answer: { kvm: { hugepages: { pages1G: 40 } } },
    errors: ["memory.hugepages kvm.hugepages.pages1G"],
  },
  {
    name: "1 GiB pages on a CPU without pdpe1gb",
    host: "lab",
    variant: (r) => {
      r.cpu.pdpe1gb = false;
    },
    answer: { kvm: { hugepages: { pages1G: 4 } } },
    errors: ["memory.hugepages-1g-cpu kvm.hugepages.pages1G"],
  },
  {
    name: "the 1.9 GiB server snapshot: 2 GiB of 2 MiB pages",
    host: "server",
    answer: { kvm: { hugepages: { pages2M: 1024 } } },
    errors: ["memory.hugepages kvm.hugepages.pages2M"],
  },
  {
    name: "the laptop: 1 GiB pages need the kernel command line, and no bootloader was found",
    host: "laptop",
    answer: { kvm: { hugepages: { pages1G: 4 } } },
    errors: ["kernel.bootloader-unknown kvm.hugepages"],
  },
  {
    name: "the guest snapshot: enabling the IOMMU with no bootloader found",
    host: "guest",
    answer: { iommu: { enabled: true } },
    errors: ["kernel.bootloader-unknown iommu"],
  },
  // ---- identities (answers built in code, past the schema) ---------------------------------------
  {
    name: "a 304-character hostname",
    host: "lab",
    answer: { host: { hostname: "kvm01" } },
    mutate: (a) => {
      if (a.host) a.host.hostname = Array(5).fill("a".repeat(60)).join("."); // 304 characters
    },
    errors: ["host.hostname host.hostname"],
  },
  {
    name: "an SSH key with a newline that would add a second authorized_keys line",
    host: "lab",
    answer: { host: { users: [{ name: "ops" }] } },
    mutate: (a) => {
      const u = a.host?.users[0];
      if (u)
        u.sshKeys = [
          "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl a\nssh-rsa AAAA evil",
        ];
    },
    errors: ["host.ssh-key host.users[0].sshKeys[0]"],
  },
  {
    name: "a plain password and a bad user name (built in code, past the schema)",
    host: "lab",
    answer: { host: { users: [{ name: "ops" }] } },
    mutate: (a) => {
      const u = a.host?.users[0];
      if (u) Object.assign(u, { name: "Ops Team", passwordHash: "hunter2" });
    },
    errors: ["host.user-name host.users[0].name", "host.password-hash host.users[0].passwordHash"],
  },
  {
    name: "a scrypt ($7$) hash on the host and in a VM: accepted on both paths",
    host: "lab",
    answer: {
      host: {
        users: [
          {
            name: "ops",
            passwordHash: "$7$CU..../....abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
          },
        ],
      },
      vms: [
        vm({
          user: {
            name: "ops",
            passwordHash: "$7$CU..../....abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDEF",
          },
        }),
      ],
    },
    errors: [],
  },
  // ---- VMs --------------------------------------------------------------------------------------
  { name: "a VM on the host's bridge", host: "lab", answer: { vms: [vm()] }, errors: [] },
  {
    name: "two hugepage-backed VMs of 2 GiB on a pool of 1024 free 2 MiB pages: the second does not fit",
    host: "lab",
    variant: (r) => {
      r.memory.hugepageSizeKiB = 2048;
      r.memory.hugepages["2048kB"] = { total: 1024, free: 1024 };
    },
    answer: { vms: [vm({ hugepages: true }), vm({ name: "web2", hugepages: true })] },
    errors: ["vms.hugepages vms[1].hugepages"],
  },
  {
    name: "the same VMs when the answer reserves 2048 pages (kvm.hugepages): both fit after the apply",
    host: "lab",
    variant: (r) => {
      r.memory.hugepageSizeKiB = 2048;
      r.memory.hugepages["2048kB"] = { total: 0, free: 0 };
    },
    answer: {
      kvm: { hugepages: { pages2M: 2048 } },
      vms: [vm({ hugepages: true }), vm({ name: "web2", hugepages: true })],
    },
    errors: [],
  },
  {
    name: "two pinned 2-vCPU VMs on a node of 2 CPUs: the second shares them (allocated across VMs)",
    host: "lab",
    variant: (r) => {
      r.memory.numa = [{ id: 0, cpus: "0-1", memoryKiB: 63 * GiB, hugepages: {}, distances: [10] }];
    },
    answer: { vms: [vm({ pin: true }), vm({ name: "web2", pin: true })] },
    errors: [],
    warnings: ["vms.pinning"],
  },
  {
    name: "a 2-vCPU VM on a host without /dev/vhost-net: one-queue virtio, said",
    host: "lab",
    variant: (r) => {
      r.kvm.vhostNet = false;
    },
    answer: { vms: [vm()] },
    errors: [],
    warnings: ["vms.vhost-net"],
  },
  {
    name: "a VM given the management NIC",
    host: "lab",
    answer: { vms: [vm({ passthrough: [{ address: LAB.mgmtPci }] })] },
    errors: ["passthrough.management-nic vms[0].passthrough[0]"],
    warnings: ["vms.passthrough"],
  },
  {
    name: "a VM's SR-IOV NIC on a PF without an sriov entry",
    host: "lab",
    answer: { vms: [vm({ nics: [{ sriov: { name: SRIOV.pfName } }] })] },
    errors: ["vms.sriov-entry vms[0].nics[0].sriov"],
  },
  {
    name: "a VM's macvtap NIC on a function without an interface",
    host: "laptop",
    answer: { vms: [vm({ nics: [{ macvtap: { pci: "0000:00:14.3" } }] })] },
    errors: ["vms.macvtap vms[0].nics[0].macvtap"],
  },
  {
    name: "the answer's own requirements: a failing check, too few NICs, no VFs; memory unread here (a warning)",
    host: "dmar",
    answer: {
      requires: {
        checks: { "iommu.enabled": "fail" },
        minNics: { count: 4, level: "fail" },
        minMemoryGiB: { value: 512, level: "fail" },
        minVfs: { count: 8, level: "warn" },
      },
    },
    errors: ['requires.checks requires.checks["iommu.enabled"]', "requires.min-nics requires.minNics"],
    warnings: ["requires.min-memory", "requires.min-vfs"],
  },
  {
    name: "two VMs with one name, on a bridge nobody defined",
    host: "lab",
    answer: { vms: [vm(), vm({ nics: [{ bridge: "br7" }] })] },
    errors: ["vms.duplicate-name vms[1].name", "vms.bridge vms[1].nics[0].bridge"],
  },
  // ---- install ----------------------------------------------------------------------------------
  {
    name: "install onto the blank 4 TB disk, named by serial",
    host: "lab",
    answer: { install: { disk: { serial: "WJG00001" } } },
    errors: [],
  },
  {
    name: "install onto the disk holding / and /boot",
    host: "lab",
    answer: { install: { disk: { serial: "PHYF000000AB480BGN" }, wipe: true } },
    errors: ["install.target install.disk"],
  },
  {
    name: "install onto a disk chosen by model only",
    host: "lab",
    answer: { install: { disk: { model: "ST4000*" } } },
    errors: ["install.disk-named install.disk"],
  },
  {
    name: "install with a rule two disks match: ambiguous, refused",
    host: "lab",
    answer: { install: { disk: { rotational: false, minSize: "1T" } } },
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) d.rotational = false;
    },
    errors: ["match.several install.disk", "install.disk-named install.disk"],
  },
  {
    name: "install onto the boot medium, known by its serial though detection renamed it",
    host: "lab",
    variant: (r) => {
      r.bootMedium = {
        live: true,
        mount: "/dev/sdz1 on /run/live/medium",
        disks: [
          {
            name: "sdz",
            serial: "WJG00001",
            wwn: null,
            byId: [],
            sizeBytes: null,
            fsUuids: [],
            reason: "mounted at /run/live/medium (the medium this system booted from)",
          },
        ],
      };
    },
    answer: { install: { disk: { serial: "WJG00001" }, wipe: true } },
    errors: ["install.target install.disk"],
  },
  {
    name: "install onto a partitioned disk without wipe",
    host: "lab",
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) d.partitions = [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: "xfs" }];
    },
    answer: { install: { disk: { byId: "ata-ST4000NM000A-2HZ100_WJG00001" } } },
    errors: ["install.holds-data install.disk"],
  },
  {
    name: "install onto a partitioned disk with wipe",
    host: "lab",
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) d.partitions = [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: "xfs" }];
    },
    answer: { install: { disk: { byId: "ata-ST4000NM000A-2HZ100_WJG00001" }, wipe: true } },
    errors: [],
  },
  {
    name: "install onto a 2 GiB USB stick: too small, and flagged as USB",
    host: "lab",
    variant: (r) => {
      const d = disk(r, "sdb");
      if (d) Object.assign(d, { transport: "usb", removable: true, sizeBytes: 2 * 1024 ** 3 });
    },
    answer: { install: { disk: { serial: "WJG00001" } } },
    errors: ["install.size install.disk"],
    warnings: ["install.removable"],
  },
  {
    name: "install where detection cannot tell which disk holds /; BIOS loader only on a UEFI machine",
    host: "lab",
    variant: (r) => {
      const message = "cannot tell which disk holds / (/dev/mapper/mpatha)";
      r.warnings.push({ path: "/proc/self/mounts", message });
      r.storage = { rootDisk: { known: false, disks: [], reason: `/proc/self/mounts: ${message}` } };
      r.firmware.mode = "uefi";
    },
    answer: { install: { disk: { serial: "S64GNE0R000001" }, firmware: "bios" } },
    errors: ["install.root-unknown install.disk"],
    warnings: ["install.firmware"],
  },
  {
    name: "consoles on 0.0.0.0",
    host: "lab",
    answer: { consoles: { vnc: true, listen: "0.0.0.0" } },
    errors: ["consoles.wildcard consoles.listen"],
  },
  {
    name: "a SPICE console without TLS on the management address",
    host: "lab",
    answer: {
      network: {
        bridges: [
          { name: "br0", uplink: { uplink: true }, addresses: ["192.0.2.10/24"], gateway: "192.0.2.1" },
        ],
      },
      consoles: { spice: true, listen: "192.0.2.10", tls: false },
    },
    errors: ["consoles.tls consoles.tls"],
  },
  {
    name: "a VNC console on an address that is not the management address",
    host: "lab",
    answer: {
      network: {
        bridges: [
          { name: "br0", uplink: { uplink: true }, addresses: ["192.0.2.10/24"], gateway: "192.0.2.1" },
        ],
      },
      consoles: { vnc: true, listen: "192.0.2.99" },
    },
    errors: ["consoles.management consoles.listen"],
  },
  {
    name: "a consoles section with neither VNC nor SPICE",
    host: "lab",
    answer: { consoles: { listen: "127.0.0.1" } },
    errors: [],
    warnings: ["consoles.some"],
  },
  // ---- cluster (the lab host named kvm-a, a member) ---------------------------------------------
  {
    name: "a cluster member twice, an address outside its network, a host that is no member",
    host: "lab",
    variant: (r) => {
      r.hostname = "kvm-z";
    },
    answer: {
      cluster: {
        name: "rack1",
        networks: { cluster: "192.0.2.0/24" },
        members: [
          { host: "kvm-a", address: "192.0.2.11" },
          { host: "kvm-a", address: "198.51.100.12" },
        ],
      },
    },
    errors: [
      "cluster.self cluster.members",
      "cluster.unique cluster.members[1].host",
      "cluster.networks cluster.members[1].address",
    ],
  },
  {
    name: "HA without fencing, an HA VM the answer lacks, one on a local disk, two_node off with two",
    host: "lab",
    variant: (r) => {
      r.hostname = "kvm-a";
    },
    answer: {
      vms: [
        { name: "web1", image: "debian-12", vcpus: 1, memoryMiB: 512, diskGiB: 4, user: { name: "ops" } },
      ],
      cluster: {
        ...clusterOf(),
        ha: { vms: [{ vm: "web1" }, { vm: "db1" }], twoNode: false },
      },
    },
    errors: [
      "cluster.fencing cluster.members[0].fence",
      "cluster.fencing cluster.members[1].fence",
      "cluster.ha-vms cluster.ha.vms[1].vm",
      "cluster.two-node cluster.ha.twoNode",
      "cluster.ha-store vms[0].store",
    ],
  },
  {
    name: "shared stores named alike, a VM on a store the cluster lacks and naming no member, kernel NFS on a host without it",
    host: "lab",
    variant: (r) => {
      r.hostname = "kvm-a";
      r.storageClients = {
        iscsiTcp: true,
        iscsiadm: true,
        nfsClient: false,
        mountNfs: true,
        sources: { nfsClient: "/proc/filesystems" },
      };
    },
    answer: {
      vms: [
        {
          name: "web1",
          image: "debian-12",
          vcpus: 1,
          memoryMiB: 512,
          diskGiB: 4,
          user: { name: "ops" },
          store: { name: "nas2", volume: "web1.raw" },
        },
      ],
      cluster: {
        ...clusterOf(),
        storage: [
          { name: "nas1", type: "nfs", server: "192.0.2.50", export: "/srv/vms", mode: "kernel" },
          {
            name: "nas1",
            type: "iscsi",
            portal: "192.0.2.51",
            target: "iqn.2026-12.net.example:s1",
            mode: "kernel",
          },
        ],
      },
    },
    errors: [
      "cluster.storage-names cluster.storage[1].name",
      "cluster.vm-store vms[0].store.name",
      "cluster.vm-member vms[0]",
      "cluster.store-mode cluster.storage[0].mode",
    ],
  },
];
