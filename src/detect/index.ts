// detect: read-only facts about one machine, from /proc, /sys, /dev and the ACPI tables, through the
// HostFs port. It owns the HostReport type and the detectors; it never writes and never decides
// (verdicts belong to checks/). Two detectors run programs, through the CommandRunner port and on the
// live host only: the functional KVM probe, and `ip -j addr` for the interfaces' addresses.
import type { CommandRunner } from "../host/commands.js";
import type { HostFs } from "../host/fs.js";
import { loadPciIds, type PciIds } from "../host/pci-ids.js";
import { cachedPciIds } from "../host/pci-names-cache.js";
import { attachAddresses, readAddresses } from "./addresses.js";
import { detectBootMedium } from "./boot-medium.js";
import { detectCgroups } from "./cgroups.js";
import { detectCpu } from "./cpu.js";
import { detectFirmware } from "./firmware.js";
import { detectIommu } from "./iommu.js";
import { detectKvm, type ProbeOptions } from "./kvm.js";
import { detectMemory } from "./memory.js";
import { detectNics } from "./nic.js";
import { detectPci, nameDevices } from "./pci.js";
import { detectStorage } from "./storage.js";
import { detectStorageClients } from "./storage-clients.js";
import type { DetectContext } from "./sysfs.js";
import { detectSystem } from "./system.js";
import type { HostReport } from "./types.js";
import { detectVswitch } from "./vswitch.js";

export type { HostReport } from "./types.js";

export interface DetectOptions {
  fs: HostFs;
  /** Runs the functional KVM probe and `ip -j addr` (live only); absent: neither runs. */
  runner?: CommandRunner;
  probe?: ProbeOptions;
  /** pci.ids of the machine running kvmstrap (names are looked up, never required). */
  pciIds?: PciIds | null;
}

export async function detectHost(options: DetectOptions): Promise<HostReport> {
  const { fs } = options;
  const ctx: DetectContext = { fs, warnings: [] };
  const live = fs.root === "/";

  // Everything starts at once; only the detectors that cross-reference PCI functions wait for them,
  // and the pci.ids names (CPU work) are filled in while their reads are in flight.
  const kvmPromise = detectKvm(ctx, { live, runner: options.runner, ...options.probe });
  const disksPromise = detectStorage(ctx);
  const pciPromise = detectPci(ctx, null);
  const iommuPromise = pciPromise.then((pci) => detectIommu(ctx, pci));
  const addressesPromise = readAddresses(ctx, live, options.runner);
  const nicsPromise = pciPromise.then(async (pci) => {
    const nics = await detectNics(ctx, pci);
    attachAddresses(nics, await addressesPromise);
    return nics;
  });
  const namedPromise = pciPromise.then(async (pci) => {
    if (options.pciIds !== undefined) return nameDevices(pci, options.pciIds);
    // Live runs keep this boot's names in /run/kvmstrap; other roots read pci.ids directly.
    const ids = live ? await cachedPciIds((i) => nameDevices(pci, i)) : await loadPciIds();
    return nameDevices(pci, ids);
  });
  const storageClientsPromise = detectStorageClients(ctx);
  const [hostname, kernel, cpu, memory, firmware, cgroups, system, pci, iommu, nics, storage, kvm, vswitch] =
    await Promise.all([
      fs.readText("/proc/sys/kernel/hostname"),
      fs.readText("/proc/sys/kernel/osrelease"),
      detectCpu(ctx),
      detectMemory(ctx),
      detectFirmware(ctx),
      detectCgroups(ctx),
      detectSystem(ctx),
      namedPromise,
      iommuPromise,
      nicsPromise,
      disksPromise,
      kvmPromise,
      detectVswitch(ctx),
    ]);

  const { disks, rootDisk } = storage;
  const bootMedium = await detectBootMedium(ctx, disks);
  for (const p of fs.problems) {
    ctx.warnings.push({
      path: p.path,
      reason: p.reason,
      message:
        p.reason === "dangling"
          ? p.detail
          : p.reason === "unreadable"
            ? `cannot read (${p.detail})`
            : `not read, so what it holds is unknown: ${p.detail}`,
    });
  }
  return {
    schema: "kvmstrap.host-report/1",
    root: fs.root,
    live,
    hostname: hostname?.trim() || null,
    kernel: kernel?.trim() || null,
    cpu,
    kvm,
    iommu,
    pci,
    nics,
    disks,
    storage: { rootDisk },
    memory,
    firmware,
    cgroups,
    system,
    ...(bootMedium ? { bootMedium } : {}),
    vswitch,
    storageClients: await storageClientsPromise,
    warnings: dedupeWarnings(ctx.warnings),
  };
}

/**
 * Once each, in path order: the detectors run at once and push as their reads finish, so the order
 * they pushed in is the disk's timing, and the same host must give the same report.
 */
function dedupeWarnings(ws: HostReport["warnings"]): HostReport["warnings"] {
  const seen = new Set<string>();
  return ws
    .filter((w) => {
      const k = `${w.path}\0${w.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .sort((a, b) =>
      a.path < b.path ? -1 : a.path > b.path ? 1 : a.message < b.message ? -1 : a.message > b.message ? 1 : 0,
    );
}
