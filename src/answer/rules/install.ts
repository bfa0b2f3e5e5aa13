// Installing onto a disk: the install erases its target, so the target must be the one disk the
// answer names (by byId, serial or WWN), never the medium the appliance booted from (matched by
// identity: serial, WWN, by-id links, never by kernel name), never a device that is not a disk
// (sr, loop, ram, md, dm, zram, nbd), never a disk in use, and never a disk holding data unless the
// answer says to wipe it. USB and removable disks are allowed but flagged.
import { diskContents, multipathPeers, rootDiskUnknown } from "../../checks/resources.js";
import type { BootMediumReport, DiskReport, HostReport } from "../../detect/types.js";
import { type Rule, rule } from "./types.js";

const PATH = "install.disk";
/** The smallest disk the hypervisor fits on with room for its logs (the live root is ~0.7 GiB). */
export const MIN_INSTALL_BYTES = 4 * 1024 ** 3;
const NOT_A_DISK = /^(sr|loop|ram|zram|md|dm-|nbd|fd)/;

type Identity = Pick<DiskReport, "name" | "serial" | "wwn" | "byId">;

const clean = (s: string | null | undefined) => (s ?? "").trim().toLowerCase();

/**
 * Whether two disk records are the same device, by identity: the WWN, the serial or a by-id link.
 * The kernel name counts only when neither record carries any identity (a device without serial,
 * WWN or links can be told only by its name within one detection).
 */
export function sameDisk(a: Identity, b: Identity): boolean {
  if (clean(a.wwn) && clean(a.wwn) === clean(b.wwn)) return true;
  if (clean(a.serial) && clean(a.serial) === clean(b.serial)) return true;
  if (a.byId.some((l) => b.byId.includes(l))) return true;
  const anonymous = (x: Identity) => !clean(x.serial) && !clean(x.wwn) && x.byId.length === 0;
  return anonymous(a) && anonymous(b) && a.name === b.name;
}

/** The boot-medium entry this disk is, if any. */
export function bootMediumOf(report: HostReport, d: DiskReport): BootMediumReport["disks"][number] | null {
  return report.bootMedium?.disks.find((m) => sameDisk(m, d)) ?? null;
}

/** Why a disk can never be an install target (even with wipe), or null. */
export function installExclusion(report: HostReport, d: DiskReport): { ruleId: string; why: string } | null {
  if (d.virtual || NOT_A_DISK.test(d.name))
    return { ruleId: "install.not-a-disk", why: `${d.name} is not a disk (sr, loop, ram, md, dm, zram)` };
  const medium = bootMediumOf(report, d);
  if (medium) return { ruleId: "install.boot-medium", why: `it is the boot medium: ${medium.reason}` };
  const running = d.roles.filter((r) => r !== "boot-medium");
  if (d.roles.includes("boot-medium"))
    return { ruleId: "install.boot-medium", why: "it is the boot medium (a live medium is mounted from it)" };
  if (running.length)
    return { ruleId: "install.in-use", why: `it holds the running system (${running.join(", ")})` };
  if (d.mountpoints.length || d.partitions.some((p) => p.mountpoints.length))
    return { ruleId: "install.in-use", why: `it is mounted (${d.mountpoints.join(", ")})` };
  if (d.holders.length || d.partitions.some((p) => p.holders.length))
    return {
      ruleId: "install.in-use",
      why: `it is in use by ${d.holders.join(", ") || "a stacked device"} (LVM/RAID/dm)`,
    };
  const peers = multipathPeers(d, report);
  if (peers.length)
    return {
      ruleId: "install.in-use",
      why: `it is a multipath member (the same device as ${peers.join(", ")})`,
    };
  if (d.readOnly) return { ruleId: "install.not-a-disk", why: "it is read-only" };
  return null;
}

export const isRemovable = (d: DiskReport) => d.removable === true || d.transport === "usb";

export const installRules: Rule[] = [
  rule(
    "install.disk-named",
    "the install target is named by byId, serial or wwn, never chosen by pick, model or size",
    ({ answer, facts }, emit) => {
      const r = answer.install?.disk;
      if (!r) return;
      const d = facts.disk(PATH);
      const hint = d
        ? `name it as byId: ${d.byId[0]?.replace(/^\/dev\/disk\/by-id\//, "") ?? "(none)"}, serial: ${d.serial ?? "(none)"} or wwn: ${d.wwn ?? "(none)"}`
        : "kvmstrap answer explain FILE lists the disks with their by-id links and serials";
      if (r.pick !== undefined || r.largest)
        emit.error(PATH, "the install target cannot be chosen by pick or largest: it is erased", hint);
      else if (r.byId === undefined && r.serial === undefined && r.wwn === undefined)
        emit.error(
          PATH,
          `the install erases its target, so it is named by byId, serial or wwn${d ? ` (this rule picked ${d.name} by other criteria)` : ""}`,
          hint,
        );
    },
  ),
  rule(
    "install.target",
    "never the boot medium (by identity), never sr/loop/ram/md/dm/zram, never a disk in use",
    ({ answer, report, facts }, emit) => {
      if (!answer.install) return;
      const d = facts.disk(PATH);
      if (!d) return;
      const ex = installExclusion(report, d);
      if (ex)
        emit.error(
          PATH,
          `refusing to install onto ${d.name}: ${ex.why}`,
          "name another disk: kvmstrap install --list shows the candidates and why each is or is not usable",
        );
    },
  ),
  rule(
    "install.holds-data",
    "a disk holding partitions, filesystems or RAID/LVM/ZFS members is erased only when the answer says wipe",
    ({ answer, report, facts }, emit) => {
      const d = facts.disk(PATH);
      if (!answer.install || !d || installExclusion(report, d)) return;
      const what = diskContents(d);
      if (what && !answer.install.wipe)
        emit.error(
          PATH,
          `${d.name} ${what}: the install would erase it`,
          "check that it holds nothing you need, then set install.wipe: true, or name a blank disk",
        );
    },
  ),
  rule(
    "install.size",
    "the target has room for the hypervisor (4 GiB at least)",
    ({ answer, facts }, emit) => {
      const d = facts.disk(PATH);
      if (!answer.install || !d) return;
      if (d.sizeBytes === null)
        emit.error(PATH, `${d.name}'s size is unknown: cannot tell whether the system fits`);
      else if (d.sizeBytes < MIN_INSTALL_BYTES)
        emit.error(
          PATH,
          `${d.name} has ${Math.floor(d.sizeBytes / 1024 ** 2)} MiB: the install needs 4 GiB at least`,
        );
    },
  ),
  rule("install.removable", "USB and removable targets are flagged", ({ answer, facts }, emit) => {
    const d = facts.disk(PATH);
    if (answer.install && d && isRemovable(d))
      emit.warning(
        PATH,
        `${d.name} is a ${d.transport === "usb" ? "USB" : "removable"} disk: the host will boot from it, and it must stay plugged in`,
      );
  }),
  rule(
    "install.root-unknown",
    "no install on a host where detection cannot tell which disk holds /",
    ({ answer, report }, emit) => {
      const unknown = rootDiskUnknown(report);
      if (answer.install && unknown)
        emit.error(
          PATH,
          `detection cannot tell which disk holds the running system (${unknown}): no disk is known to be safe to erase`,
          "boot the kvmstrap appliance on this machine and install from there",
        );
    },
  ),
  rule(
    "install.firmware",
    "the boot loaders installed include the firmware this machine booted with",
    ({ answer, report }, emit) => {
      const fw = answer.install?.firmware;
      const mode = report.firmware.mode;
      if (!fw || fw === "auto" || fw === "both" || mode === "unknown" || fw === mode) return;
      emit.warning(
        "install.firmware",
        `this machine booted with ${mode === "uefi" ? "UEFI" : "BIOS"}, but firmware: ${fw} installs only the ${fw === "uefi" ? "UEFI" : "BIOS"} boot loader`,
        "use firmware: auto (both boot loaders)",
      );
    },
  ),
];
