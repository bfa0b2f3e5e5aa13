// VFIO passthrough: devices bound to vfio-pci by PCI address at boot, by a unit that re-checks
// vendor:device before binding (never vfio-pci.ids=, which grabs every identical device). Refused,
// with the reason: the boot VGA, the management NIC, the boot disk's controller, and any pick that
// leaves another endpoint of its IOMMU group behind (the group passes through whole or not at all).
import { matchPci } from "../answer/match.js";
import type { PciDevice } from "../detect/types.js";
import type { PlanContext } from "./context.js";
import { planBootUnit, refuse } from "./context.js";
import { renderVfioBindScript, renderVfioBindUnit } from "./render/vfio.js";

export const VFIO_PATHS = {
  script: "/usr/local/lib/kvmstrap/vfio-bind",
  unit: "/etc/systemd/system/kvmstrap-vfio-bind.service",
} as const;

const isBridge = (d: PciDevice) => /^060[04]/.test(d.classId ?? "");

/** What stops a device from being given to a guest, or null. */
export function passthroughObstacle(ctx: PlanContext, d: PciDevice): string | null {
  const { report } = ctx;
  if (d.bootVga) return `${d.address} is the boot VGA: the console would go dark`;
  const mgmt = report.nics.filter((n) => n.management && n.pciAddress).map((n) => n.pciAddress);
  if (mgmt.includes(d.address)) return `${d.address} is the management NIC (it carries the default route)`;
  const bootControllers = report.disks
    .filter((k) => k.roles.some((r) => r === "root" || r === "boot" || r === "efi" || r === "boot-medium"))
    .map((k) => k.pciAddress);
  if (bootControllers.includes(d.address)) return `${d.address} controls the disk the host boots from`;
  if (isBridge(d)) return `${d.address} is a PCI bridge`;
  return null;
}

/** The devices bound to vfio-pci, or [] with refusals recorded. Also used for softdeps. */
export function planPassthrough(ctx: PlanContext): { devices: PciDevice[]; softdeps: string[] } {
  const entries = ctx.answer.passthrough;
  if (entries.length === 0) return { devices: [], softdeps: [] };
  const chosen = new Map<string, PciDevice>();
  for (const [i, e] of entries.entries()) {
    const m = matchPci(e.device, ctx.report);
    if (m.error) {
      refuse(ctx, `passthrough[${i}].device`, m.error);
      continue;
    }
    for (const d of m.chosen) {
      const obstacle = passthroughObstacle(ctx, d);
      if (obstacle) refuse(ctx, `passthrough[${i}].device`, obstacle);
      else chosen.set(d.address, d);
    }
  }

  const { iommu } = ctx.report;
  if (!iommu.groupsPopulated && !ctx.answer.iommu?.enabled) {
    refuse(ctx, "passthrough", "the IOMMU is off and the answer does not enable it (iommu.enabled: true)");
    return { devices: [], softdeps: [] };
  }
  // Group viability: every endpoint of a group goes to vfio-pci together; bridges are exempt.
  for (const d of chosen.values()) {
    const group = iommu.groups.find((g) => g.id === d.iommuGroup);
    if (!group) continue;
    const left = group.devices.filter((a) => {
      const other = ctx.report.pci.find((p) => p.address === a);
      return other && !isBridge(other) && !chosen.has(a);
    });
    if (left.length) {
      refuse(
        ctx,
        "passthrough",
        `${d.address} shares IOMMU group ${group.id} with ${left.join(", ")}: add them to passthrough too, or the group cannot be assigned`,
      );
      chosen.delete(d.address);
    }
  }
  const devices = [...chosen.values()].filter((d) => d.vendorId && d.deviceId);
  if (devices.length === 0) return { devices, softdeps: [] };
  planBootUnit(ctx, {
    id: "vfio",
    effect: "reboot",
    script: {
      path: VFIO_PATHS.script,
      content: renderVfioBindScript(
        devices.map((d) => ({ address: d.address, vendorId: d.vendorId ?? "", deviceId: d.deviceId ?? "" })),
      ),
      summary: `bind ${devices.map((d) => d.address).join(", ")} to vfio-pci at boot (ids re-checked)`,
    },
    unit: {
      path: VFIO_PATHS.unit,
      content: renderVfioBindUnit(),
      summary: "systemd unit running the bind script before libvirtd",
    },
  });
  // Host drivers that would claim the devices first must load after vfio-pci.
  const softdeps = [
    ...new Set(devices.map((d) => d.driver).filter((x): x is string => !!x && x !== "vfio-pci")),
  ];
  return { devices, softdeps };
}
