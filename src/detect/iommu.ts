// IOMMU facts: which ACPI table describes remapping hardware (DMAR on Intel, IVRS on AMD, IORT on Arm),
// what the kernel command line asks for, which IOMMU groups the kernel built, and whether interrupt
// remapping is available. Detection only reports; telling "disabled in firmware" from "disabled in the
// kernel" is the checks' job, and they need exactly these separate facts to do it.
import { type DetectContext, readAttr } from "./sysfs.js";
import type { IommuGroup, IommuReport, PciDevice, Sources, TriState } from "./types.js";

const ACPI_TABLES = "/sys/firmware/acpi/tables";
const GROUPS = "/sys/kernel/iommu_groups";
const CLASS_IOMMU = "/sys/class/iommu";

/** Kernel parameters that decide whether and how the IOMMU runs. */
const IOMMU_PARAMS = /^(intel_iommu|amd_iommu|amd_iommu_intr|iommu|iommu\.[a-z_]+|intremap)$/;

export async function detectIommu(ctx: DetectContext, pci: PciDevice[]): Promise<IommuReport> {
  const sources: Sources = {};
  const fs = ctx.fs;

  const acpiTablesReadable = await fs.exists(ACPI_TABLES);
  let acpiTable: IommuReport["acpiTable"] = null;
  if (acpiTablesReadable) {
    for (const table of ["DMAR", "IVRS", "IORT"] as const) {
      if (await fs.exists(`${ACPI_TABLES}/${table}`)) {
        acpiTable = table;
        sources.acpiTable = `${ACPI_TABLES}/${table}`;
        break;
      }
    }
    if (acpiTable === null) sources.acpiTable = ACPI_TABLES; // readable, and none of the three is there
  }

  const cmdline = await readAttr(ctx, sources, "cmdline", "/proc/cmdline");
  const cmdlineParams = parseIommuParams(cmdline);
  if (cmdline !== null) sources.cmdlineParams = "/proc/cmdline";

  const groups = await readGroups(ctx, pci, sources);

  const interruptRemapping = await detectInterruptRemapping(
    ctx,
    acpiTablesReadable,
    acpiTable,
    cmdlineParams,
    sources,
  );

  return {
    acpiTable,
    acpiTablesReadable,
    cmdline,
    cmdlineParams,
    groupsPopulated: groups.length > 0,
    groups,
    interruptRemapping,
    sources,
  };
}

/** The IOMMU-related parameters of a kernel command line; a bare flag maps to "". The last one wins. */
export function parseIommuParams(cmdline: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!cmdline) return out;
  for (const token of cmdline.trim().split(/\s+/)) {
    const eq = token.indexOf("=");
    const key = eq < 0 ? token : token.slice(0, eq);
    if (IOMMU_PARAMS.test(key)) out[key] = eq < 0 ? "" : token.slice(eq + 1);
  }
  return out;
}

/**
 * Groups as the kernel lists them in /sys/kernel/iommu_groups/N/devices. Snapshots often lack /sys/kernel
 * while keeping each device's iommu_group link, so without a populated kernel view the groups are rebuilt
 * from the PCI devices' group numbers (the basename of that link).
 */
async function readGroups(ctx: DetectContext, pci: PciDevice[], sources: Sources): Promise<IommuGroup[]> {
  const ids = ((await ctx.fs.readDir(GROUPS)) ?? []).filter((e) => /^\d+$/.test(e));
  if (ids.length > 0) {
    const groups = await Promise.all(
      ids.map(async (id) => ({
        id: Number(id),
        devices: ((await ctx.fs.readDir(`${GROUPS}/${id}/devices`)) ?? []).sort(),
      })),
    );
    sources.groups = GROUPS;
    return groups.sort((a, b) => a.id - b.id);
  }
  const byId = new Map<number, string[]>();
  for (const d of pci) {
    if (d.iommuGroup === null) continue;
    const list = byId.get(d.iommuGroup) ?? [];
    list.push(d.address);
    byId.set(d.iommuGroup, list);
  }
  if (byId.size > 0) sources.groups = "/sys/bus/pci/devices/*/iommu_group";
  return [...byId.entries()]
    .map(([id, devices]) => ({ id, devices: devices.sort() }))
    .sort((a, b) => a.id - b.id);
}

/**
 * Interrupt remapping, as far as sysfs can tell without dmesg:
 * - Intel: every DMAR unit's extended capability register (/sys/class/iommu/dmarN/intel-iommu/ecap) has
 *   bit 3 (IR). The kernel enables IR only when all units support it, so one unit without it means "no".
 *   A supported IR still gets turned off by intremap=off, so that is honoured too. What sysfs cannot show
 *   is a firmware opt-out (the DMAR x2APIC_OPT_OUT flag) or an enable failure; those leave "yes" optimistic,
 *   and a check that needs certainty must confirm with the kernel log.
 * - AMD: the AMD IOMMU driver always sets up interrupt remapping when it runs (ivhd units registered in
 *   /sys/class/iommu), unless intremap=off is given.
 * - Firmware tables readable and none describes an IOMMU: nothing can remap interrupts, "no".
 * - Anything else (no sysfs view of the units, e.g. a snapshot or IOMMU off in the kernel): "unknown",
 *   because the hardware may well support it once the IOMMU is enabled.
 */
async function detectInterruptRemapping(
  ctx: DetectContext,
  acpiTablesReadable: boolean,
  acpiTable: IommuReport["acpiTable"],
  params: Record<string, string>,
  sources: Sources,
): Promise<TriState> {
  const units = (await ctx.fs.readDir(CLASS_IOMMU)) ?? [];
  const disabledOnCmdline = params.intremap === "off" || params.intremap === "no";

  const dmar = units.filter((u) => u.startsWith("dmar"));
  if (dmar.length > 0) {
    let allIr = true;
    let read = 0;
    for (const unit of dmar) {
      const path = `${CLASS_IOMMU}/${unit}/intel-iommu/ecap`;
      const text = await ctx.fs.readText(path);
      const ecap = text === null ? null : parseEcap(text);
      if (text !== null && ecap === null)
        ctx.warnings.push({
          path,
          message: `expected a hex register, found ${JSON.stringify(text.trim().slice(0, 40))}`,
        });
      if (ecap === null) continue;
      read++;
      sources.interruptRemapping = path;
      if ((ecap & 0x8n) === 0n) allIr = false;
    }
    if (read > 0) {
      if (!allIr) return "no";
      if (disabledOnCmdline) {
        sources.interruptRemapping = "/proc/cmdline";
        return "no";
      }
      return "yes";
    }
  }

  const ivhd = units.filter((u) => u.startsWith("ivhd"));
  if (ivhd.length > 0) {
    sources.interruptRemapping = disabledOnCmdline ? "/proc/cmdline" : `${CLASS_IOMMU}/${ivhd[0]}`;
    return disabledOnCmdline ? "no" : "yes";
  }

  if (acpiTablesReadable && acpiTable === null) {
    sources.interruptRemapping = ACPI_TABLES;
    return "no";
  }
  return "unknown";
}

function parseEcap(text: string): bigint | null {
  const t = text.trim().replace(/^0x/i, "");
  return /^[0-9a-f]{1,16}$/i.test(t) ? BigInt(`0x${t}`) : null;
}

/** The group a PCI address belongs to in a report, or null. */
export function groupOf(groups: IommuGroup[], address: string): IommuGroup | null {
  return groups.find((g) => g.devices.includes(address)) ?? null;
}
