// VFIO passthrough: devices bound to vfio-pci by PCI address at boot, by a unit that re-checks
// vendor:device before binding (never vfio-pci.ids=, which grabs every identical device). What may
// be passed through is the rule set's decision (src/answer/rules/passthrough.ts: the boot VGA, the
// management NIC, the boot disk's controller, half an IOMMU group...): refused entries are skipped.
import { matchPci } from "../answer/match.js";
import type { PciDevice } from "../detect/types.js";
import type { PlanContext } from "./context.js";
import { isRefused, planBootUnit } from "./context.js";
import { renderVfioBindScript, renderVfioBindUnit } from "./render/vfio.js";

export const VFIO_PATHS = {
  script: "/usr/local/lib/kvmstrap/vfio-bind",
  unit: "/etc/systemd/system/kvmstrap-vfio-bind.service",
} as const;

/** The devices bound to vfio-pci (those no finding refused). Also used for softdeps. */
export function planPassthrough(ctx: PlanContext): { devices: PciDevice[]; softdeps: string[] } {
  const entries = ctx.answer.passthrough;
  if (entries.length === 0) return { devices: [], softdeps: [] };
  // Groups pass whole, so one refused entry holds back the section: the rest may share its group.
  if (isRefused(ctx, "passthrough")) return { devices: [], softdeps: [] };
  const chosen = new Map<string, PciDevice>();
  for (const e of entries) for (const d of matchPci(e.device, ctx.report).chosen) chosen.set(d.address, d);
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
