// Firmware facts: UEFI or legacy BIOS, Secure Boot, and the DMI identity of the system. DMI comes from
// /sys/class/dmi/id (the same data systeminformation reads, without its cost on the hot path).
import { type DetectContext, readAttr } from "./sysfs.js";
import type { FirmwareReport, Sources, TriState } from "./types.js";

const SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

export async function detectFirmware(ctx: DetectContext): Promise<FirmwareReport> {
  const sources: Sources = {};
  const efiDir = "/sys/firmware/efi";
  const [efi, firmwareDir, sb, vendor, product, bios] = await Promise.all([
    ctx.fs.exists(efiDir),
    ctx.fs.exists("/sys/firmware"),
    ctx.fs.readBytes(`${efiDir}/efivars/${SECURE_BOOT_VAR}`, 0, 5),
    readAttr(ctx, sources, "vendor", "/sys/class/dmi/id/sys_vendor"),
    readAttr(ctx, sources, "product", "/sys/class/dmi/id/product_name"),
    readAttr(ctx, sources, "biosVersion", "/sys/class/dmi/id/bios_version"),
  ]);
  // Partial snapshots often lack /sys/firmware entirely: then the mode is unknown, not BIOS.
  const mode = efi ? "uefi" : firmwareDir ? "bios" : "unknown";
  if (efi || firmwareDir) sources.mode = efi ? efiDir : "/sys/firmware";
  // efivars are 4 attribute bytes followed by the value; 1 means Secure Boot is on.
  let secureBoot: TriState = mode === "bios" ? "no" : "unknown";
  if (sb) {
    secureBoot = sb[4] === 1 ? "yes" : "no";
    sources.secureBoot = `${efiDir}/efivars/${SECURE_BOOT_VAR}`;
  }
  return { mode, secureBoot, system: { vendor, product, biosVersion: bios }, sources };
}
