// Checks for what VMs consume: memory and hugepages, CPUs, NICs (and which one is management),
// SR-IOV capable functions, passthrough candidates, disks, firmware mode and cgroup controllers.
import type { DiskReport, HostReport } from "../detect/types.js";
import { type Check, check } from "./types.js";

const GiB = 1024 * 1024;

export function memoryChecks(r: HostReport): Check[] {
  const m = r.memory;
  const out: Check[] = [];
  const facts = Object.values(m.sources);
  if (m.totalKiB !== null) {
    const gib = m.totalKiB / GiB;
    out.push(
      check({
        id: "memory.total",
        title: "Memory for guests",
        facts,
        level: gib < 4 ? "warn" : "pass",
        state: "ok",
        reason: `${gib.toFixed(1)} GiB total${m.numa.length > 1 ? ` across ${m.numa.length} NUMA nodes` : ""}`,
        remediation: gib < 4 ? "Less than 4 GiB leaves little for guests after the host's own needs." : null,
      }),
    );
  }
  const pages = Object.entries(m.hugepages).filter(([, c]) => c.total > 0);
  out.push(
    check({
      id: "memory.hugepages",
      title: "Hugepages",
      facts,
      level: "note",
      state: "info",
      reason: `${pages.length ? pages.map(([s, c]) => `${c.total} x ${s} (${c.free} free)`).join(", ") : "none reserved"}; 1 GiB pages ${r.cpu.pdpe1gb ? "supported" : "not supported"} by the CPU`,
      remediation: pages.length
        ? null
        : "Reserve them in the plan (kvm.hugepages) when VMs should be backed by hugepages.",
    }),
  );
  if (r.cpu.offlineCpus) {
    out.push(
      check({
        id: "cpu.offline",
        title: "Offline CPUs",
        facts: [r.cpu.sources.offlineCpus ?? "/sys/devices/system/cpu/offline"],
        level: "warn",
        state: "info",
        reason: `CPUs ${r.cpu.offlineCpus} are offline and cannot run vCPUs`,
        remediation:
          "echo 1 > /sys/devices/system/cpu/cpuN/online for each, or check maxcpus=/nosmt on the kernel command line.",
      }),
    );
  }
  return out;
}

export function networkChecks(r: HostReport): Check[] {
  const out: Check[] = [];
  const mgmt = r.nics.find((n) => n.management);
  // A VF is hardware but not a port of its own: it is counted apart, never as a physical NIC.
  const physical = r.nics.filter((n) => !n.virtual && n.kind !== "vf" && !n.physfn);
  const vfs = r.nics.filter((n) => n.kind === "vf" || n.physfn);
  const vfNote = vfs.length ? `; ${vfs.length} SR-IOV VF${vfs.length > 1 ? "s" : ""}` : "";
  out.push(
    check({
      id: "net.nics",
      title: "Network interfaces",
      facts: r.nics.flatMap((n) => Object.values(n.sources)).slice(0, 8),
      level: physical.length ? "pass" : "warn",
      state: physical.length ? "ok" : "unknown",
      reason: physical.length
        ? `${physical.length} physical NIC${physical.length > 1 ? "s" : ""}: ${physical.map((n) => `${n.name ?? "(no interface)"}${n.pciAddress ? ` @ ${n.pciAddress}` : ""}`).join(", ")}${vfNote}`
        : `no physical NIC found${vfNote}`,
    }),
  );
  if (r.live) {
    out.push(
      check({
        id: "net.management",
        title: "Management NIC",
        facts: ["/proc/net/route"],
        level: mgmt ? "pass" : "warn",
        state: mgmt ? "ok" : "unknown",
        reason: mgmt
          ? `${mgmt.name} carries the default route; it is never offered for VFIO or VF changes`
          : "no default route: the management NIC cannot be identified, so network changes are riskier",
        remediation: mgmt ? null : "Configure a default route before changing networking remotely.",
      }),
    );
  }
  const sriov = r.pci.filter((d) => d.sriov && d.sriov.totalVfs > 0);
  if (sriov.length) {
    out.push(
      check({
        id: "sriov.capable",
        title: "SR-IOV",
        facts: sriov.map((d) => d.sources.sriov ?? d.address),
        level: "note",
        state: "info",
        reason: sriov
          .map((d) =>
            d.sriov?.totalVfsKnown === false
              ? `${d.address} at least ${d.sriov.totalVfs} VFs (total unknown: sriov_totalvfs not captured; ${d.sriov.numVfs} enabled)`
              : `${d.address} up to ${d.sriov?.totalVfs} VFs (${d.sriov?.numVfs} enabled)`,
          )
          .join("; "),
        remediation: r.iommu.groupsPopulated
          ? null
          : "VFs can only be passed to guests once the IOMMU is on (see iommu.enabled).",
      }),
    );
  }
  return out;
}

export function passthroughCheck(r: HostReport): Check | null {
  const candidates = r.pci.filter((d) => /^(03|0403|02|0108|0c03)/.test(d.classId ?? "") && !d.physfn);
  if (candidates.length === 0) return null;
  const bound = candidates.filter((d) => d.driver === "vfio-pci");
  return check({
    id: "passthrough.candidates",
    title: "Passthrough candidates",
    facts: candidates.map((d) => d.sources.classId ?? d.address),
    level: "note",
    state: "info",
    reason: `${candidates.length} GPU/NIC/NVMe/USB functions${bound.length ? `, ${bound.length} bound to vfio-pci (${bound.map((d) => d.address).join(", ")})` : ""}${r.iommu.groupsPopulated ? "" : "; none assignable until the IOMMU is on"}`,
  });
}

/** Why a disk may not be wiped, or null when it is a candidate for a storage pool. */
export function diskExclusion(d: DiskReport, report?: HostReport): string | null {
  if (d.virtual) return "virtual device";
  if (d.roles.length) return `holds ${d.roles.join(", ")}`;
  if (d.mountpoints.length || d.partitions.some((p) => p.mountpoints.length)) return "mounted";
  if (d.holders.length || d.partitions.some((p) => p.holders.length))
    return "in use by another device (LVM/RAID/dm)";
  if (d.removable) return "removable medium";
  const peers = report ? multipathPeers(d, report) : [];
  if (peers.length) return `a multipath member (same ${peerKey(d)} as ${peers.join(", ")})`;
  return null;
}

const peerKey = (d: DiskReport) => (d.wwn ? "WWN" : "serial");

/**
 * Other disks that are paths to the same device: the same WWN, or the same serial and model. Two
 * paths of one LUN look like two free disks until multipathd assembles them.
 */
export function multipathPeers(d: DiskReport, report: HostReport): string[] {
  if (d.virtual) return [];
  const same = (o: DiskReport) =>
    d.wwn
      ? o.wwn === d.wwn
      : d.serial !== null && d.serial.trim() !== "" && o.serial === d.serial && o.model === d.model;
  return report.disks.filter((o) => o !== d && o.name !== d.name && !o.virtual && same(o)).map((o) => o.name);
}

/** What is on a disk that a pool without wipe would refuse to take over: partitions, signatures. */
export function diskContents(d: DiskReport): string | null {
  if (d.partitions.length)
    return `has partition${d.partitions.length > 1 ? "s" : ""} ${d.partitions.map((p) => p.name).join(", ")}`;
  if (d.signatures.length) return `holds ${d.signatures.join(", ")} signatures`;
  return null;
}

/**
 * Detection could not tell which disk holds / (or /boot): a multipath or otherwise unresolved root
 * device, or no mount table. Then no disk is known to be safe to wipe.
 */
/**
 * Why detection cannot tell which disk holds the running system, or null when it can: the report's
 * rootDisk fact, set by detection. A report saved before that fact existed does not say: unknown.
 */
export function rootDiskUnknown(report: HostReport): string | null {
  const root = report.storage?.rootDisk;
  if (!root)
    return "this host report does not say which disk holds / (saved by an older kvmstrap: detect again)";
  return root.known ? null : (root.reason ?? "unknown");
}

export function storageCheck(r: HostReport): Check {
  const real = r.disks.filter((d) => !d.virtual);
  const why = (d: DiskReport) => diskExclusion(d, r) ?? diskContents(d);
  const free = real.filter((d) => why(d) === null);
  return check({
    id: "storage.disks",
    title: "Disks for VM storage",
    facts: real.map((d) => d.sources.sizeBytes ?? d.path),
    level: real.length ? "note" : "warn",
    state: "info",
    reason: real.length
      ? `${real.length} disk${real.length > 1 ? "s" : ""}: ${real
          .map((d) => `${d.name} (${why(d) ?? "free"})`)
          .join(", ")}; ${free.length} usable for a new pool`
      : "no physical disk found",
  });
}

export function firmwareCheck(r: HostReport): Check {
  const f = r.firmware;
  if (r.cpu.architecture === "s390x")
    return check({
      id: "firmware.mode",
      title: "Boot firmware",
      facts: [],
      level: "note",
      state: "info",
      reason: "s390x boots by IPL: there is no UEFI or legacy firmware to choose",
    });
  return check({
    id: "firmware.mode",
    title: "Boot firmware",
    facts: Object.values(f.sources),
    level: "note",
    state: f.mode === "unknown" ? "unknown" : "info",
    reason:
      f.mode === "unknown"
        ? "UEFI or BIOS could not be told (no /sys/firmware, efivarfs or EFI system partition mount captured)"
        : f.mode === "bios"
          ? `legacy BIOS boot (no /sys/firmware/efi); guests can still use ${r.cpu.architecture === "aarch64" ? "AAVMF" : "OVMF"}`
          : `UEFI boot, Secure Boot ${f.secureBoot === "yes" ? "on (out-of-tree modules must be signed)" : f.secureBoot === "no" ? "off" : "unknown"}`,
  });
}

/** libvirt confines each guest with these controllers (virt-host-validate checks the same). */
export function cgroupCheck(r: HostReport): Check | null {
  const { cgroups } = r;
  if (cgroups.version === null) return null;
  const wanted =
    cgroups.version === 2
      ? ["cpu", "cpuset", "io", "memory", "pids"]
      : ["blkio", "cpu", "cpuacct", "cpuset", "devices", "memory"];
  const missing = wanted.filter((c) => !cgroups.controllers.includes(c));
  return check({
    id: "host.cgroups",
    title: "cgroup controllers for guest confinement",
    facts: Object.values(cgroups.sources),
    level: missing.length ? "warn" : "pass",
    state: missing.length ? "disabled-in-kernel" : "ok",
    reason: missing.length
      ? `cgroup v${cgroups.version} lacks ${missing.join(", ")}: libvirt cannot limit guests' ${missing.join("/")} use`
      : `cgroup v${cgroups.version} with ${wanted.join(", ")}`,
    remediation: missing.length
      ? cgroups.version === 2
        ? `Enable them in the root's cgroup.subtree_control, or check systemd's Delegate= and the kernel's cgroup_disable= parameter.`
        : "Mount the missing v1 controllers (systemd does by default) or boot with systemd.unified_cgroup_hierarchy=1."
      : null,
  });
}
