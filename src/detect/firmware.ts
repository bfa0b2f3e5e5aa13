// Firmware facts: UEFI or legacy BIOS, Secure Boot, and the DMI identity of the system. DMI comes from
// /sys/class/dmi/id (the same data systeminformation reads, without its cost on the hot path).
// The mode is UEFI when /sys/firmware/efi exists, or when the mount table shows efivarfs or an EFI system
// partition (vfat at /boot/efi, /efi or /boot); BIOS only when a captured /sys/firmware lists no efi;
// otherwise unknown: a snapshot that did not capture /sys/firmware says nothing about the mode.
import { readMounts } from "./storage.js";
import { type DetectContext, parseMounts, readAttr } from "./sysfs.js";
import type { FirmwareReport, Sources, TriState } from "./types.js";

const ESP_MOUNTPOINTS = new Set(["/boot/efi", "/efi", "/boot"]);
const SECURE_BOOT_VAR = "SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

export async function detectFirmware(ctx: DetectContext): Promise<FirmwareReport> {
  const sources: Sources = {};
  const efiDir = "/sys/firmware/efi";
  const [efi, firmwareDir, mountsText, sb, vendor, product, bios] = await Promise.all([
    ctx.fs.exists(efiDir),
    ctx.fs.readDir("/sys/firmware"),
    readMounts(ctx.fs),
    ctx.fs.readBytes(`${efiDir}/efivars/${SECURE_BOOT_VAR}`, 0, 5),
    readAttr(ctx, sources, "vendor", "/sys/class/dmi/id/sys_vendor"),
    readAttr(ctx, sources, "product", "/sys/class/dmi/id/product_name"),
    readAttr(ctx, sources, "biosVersion", "/sys/class/dmi/id/bios_version"),
  ]);
  const mounts = parseMounts(mountsText?.text ?? null);
  const efivarfs = mounts.some((m) => m.fstype === "efivarfs");
  const esp = mounts.find((m) => m.fstype === "vfat" && ESP_MOUNTPOINTS.has(m.mountpoint));
  // Partial snapshots often lack /sys/firmware entirely: then the mode is unknown, not BIOS.
  let mode: FirmwareReport["mode"] = "unknown";
  if (efi) {
    mode = "uefi";
    sources.mode = efiDir;
  } else if (firmwareDir !== null && firmwareDir.length > 0) {
    mode = "bios";
    sources.mode = "/sys/firmware";
  } else if (efivarfs || esp) {
    mode = "uefi";
    sources.mode = mountsText?.path ?? "/proc/mounts";
  }
  // efivars are 4 attribute bytes followed by the value; 1 means Secure Boot is on.
  let secureBoot: TriState = mode === "bios" ? "no" : "unknown";
  if (sb) {
    secureBoot = sb[4] === 1 ? "yes" : "no";
    sources.secureBoot = `${efiDir}/efivars/${SECURE_BOOT_VAR}`;
  }
  return { mode, secureBoot, system: { vendor, product, biosVersion: bios }, sources };
}
