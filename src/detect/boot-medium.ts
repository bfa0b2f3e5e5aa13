// The medium this system booted from, by identity rather than by name: an installer that picks a
// target by kernel name can write over its own USB stick (the anchors' most common complaint), and
// names change between boots and between a plan and its run. A disk is the boot medium when it is
// mounted as the live medium (/run/live/medium and the like), when it carries the appliance image's
// filesystem label, or when it carries the filesystem UUID of the medium that is mounted. Its
// serial, WWN and by-id links are recorded so a later detection finds it again under another name.
import { readMounts } from "./storage.js";
import { type DetectContext, parseMounts } from "./sysfs.js";
import type { BootMediumReport, DiskReport } from "./types.js";

/** The volume label every kvmstrap image carries (iso-build: grub-mkrescue -volid, the ESP's -n). */
export const IMAGE_LABEL = "KVMSTRAP";
const MEDIUM_MOUNTS = new Set(["/run/live/medium", "/lib/live/mount/medium", "/cdrom"]);

interface FsIds {
  labels: string[];
  uuids: string[];
}

/** Filesystem labels and UUIDs udev saw on a disk and on each of its partitions. */
async function fsIdsOf(ctx: DetectContext, d: DiskReport): Promise<FsIds> {
  const names = [d.name, ...d.partitions.map((p) => p.name)];
  const devs = await Promise.all(
    names.map((n, i) => ctx.fs.readText(i === 0 ? `/sys/block/${n}/dev` : `/sys/block/${d.name}/${n}/dev`)),
  );
  const texts = await Promise.all(
    devs.map((t) =>
      t && /^\d+:\d+$/.test(t.trim()) ? ctx.fs.readText(`/run/udev/data/b${t.trim()}`) : null,
    ),
  );
  const out: FsIds = { labels: [], uuids: [] };
  for (const text of texts) {
    for (const line of text?.split("\n") ?? []) {
      const m = /^E:ID_FS_(LABEL|UUID)=(.+)$/.exec(line.trim());
      if (!m?.[2]) continue;
      (m[1] === "LABEL" ? out.labels : out.uuids).push(m[2]);
    }
  }
  return out;
}

/**
 * The boot medium's disks with the reason each is one, and whether this is a live system (live-boot
 * on the kernel command line). Null on an installed machine with nothing that looks like a medium.
 */
export async function detectBootMedium(
  ctx: DetectContext,
  disks: readonly DiskReport[],
): Promise<BootMediumReport | null> {
  const [cmdline, mounts] = await Promise.all([ctx.fs.readText("/proc/cmdline"), readMounts(ctx.fs)]);
  const live = /(^|\s)boot=live(\s|$)/.test(cmdline ?? "");
  const mediumMount = parseMounts(mounts?.text ?? null).find((m) => MEDIUM_MOUNTS.has(m.mountpoint));
  const candidates = disks.filter((d) => !/^(loop|ram|zram|dm-|md|nbd)/.test(d.name));
  const ids = await Promise.all(candidates.map((d) => fsIdsOf(ctx, d)));
  const mountedUuids = new Set(
    candidates.flatMap((d, i) =>
      d.roles.includes("boot-medium") || d.mountpoints.some((m) => MEDIUM_MOUNTS.has(m))
        ? (ids[i]?.uuids ?? [])
        : [],
    ),
  );
  const found: BootMediumReport["disks"] = [];
  candidates.forEach((d, i) => {
    const { labels, uuids } = ids[i] ?? { labels: [], uuids: [] };
    const mountedAt = d.mountpoints.find((m) => MEDIUM_MOUNTS.has(m));
    const reason = mountedAt
      ? `mounted at ${mountedAt} (the medium this system booted from)`
      : d.roles.includes("boot-medium")
        ? "holds the boot medium (an iso9660 filesystem is mounted from it)"
        : labels.includes(IMAGE_LABEL)
          ? `carries the kvmstrap image (filesystem label ${IMAGE_LABEL})`
          : uuids.find((u) => mountedUuids.has(u))
            ? `carries the running medium's filesystem UUID ${uuids.find((u) => mountedUuids.has(u))}`
            : null;
    if (!reason) return;
    found.push({
      name: d.name,
      serial: d.serial,
      wwn: d.wwn,
      byId: d.byId,
      sizeBytes: d.sizeBytes,
      fsUuids: [...new Set(uuids)].sort(),
      reason,
    });
  });
  if (!found.length && !live && !mediumMount) return null;
  return {
    live,
    mount: mediumMount ? `${mediumMount.device} on ${mediumMount.mountpoint}` : null,
    disks: found,
  };
}
