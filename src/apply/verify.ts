// After the reboot: does the running kernel have what the plan asked for? Compares /proc/cmdline
// tokens and vfio-pci bindings from a HostReport with the plan's expectations. Pure.
import type { HostReport } from "../detect/types.js";

export interface RebootExpectations {
  /** Kernel parameters the plan put on the command line: "intel_iommu=on", "iommu=pt", "quiet". */
  cmdlineParams: string[];
  /** PCI addresses that must be bound to vfio-pci. */
  vfio: string[];
  /** The plan turned the IOMMU on: the kernel must have built IOMMU groups. */
  iommuGroups?: boolean;
}

export interface Mismatch {
  kind: "cmdline" | "vfio" | "iommu";
  item: string;
  expected: string;
  actual: string;
}

/** The effective value of each parameter: the kernel takes the last occurrence. */
function cmdlineMap(cmdline: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const token of cmdline.trim().split(/\s+/).filter(Boolean)) {
    const eq = token.indexOf("=");
    out.set(eq < 0 ? token : token.slice(0, eq), eq < 0 ? null : token.slice(eq + 1));
  }
  return out;
}

export function verifyAfterReboot(expected: RebootExpectations, report: HostReport): Mismatch[] {
  const mismatches: Mismatch[] = [];
  const cmdline = report.system?.cmdline ?? report.iommu?.cmdline ?? null;
  const running = cmdlineMap(cmdline ?? "");
  for (const param of expected.cmdlineParams) {
    const eq = param.indexOf("=");
    const key = eq < 0 ? param : param.slice(0, eq);
    const want = eq < 0 ? null : param.slice(eq + 1);
    const has = running.has(key);
    const got = running.get(key) ?? null;
    if (!has || got !== want) {
      mismatches.push({
        kind: "cmdline",
        item: key,
        expected: param,
        actual:
          cmdline === null
            ? "/proc/cmdline unreadable"
            : has
              ? got === null
                ? key
                : `${key}=${got}`
              : "absent",
      });
    }
  }
  if (expected.iommuGroups && !report.iommu.groupsPopulated) {
    mismatches.push({
      kind: "iommu",
      item: "/sys/kernel/iommu_groups",
      expected: "IOMMU groups",
      actual: "none: the IOMMU is still off (firmware setting, or the parameter did not reach the kernel)",
    });
  }
  for (const address of expected.vfio) {
    const dev = report.pci.find((d) => d.address === address);
    if (dev?.driver !== "vfio-pci") {
      mismatches.push({
        kind: "vfio",
        item: address,
        expected: "bound to vfio-pci",
        actual: !dev ? "device not present" : dev.driver ? `bound to ${dev.driver}` : "no driver bound",
      });
    }
  }
  return mismatches;
}
