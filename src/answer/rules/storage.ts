// Storage: a disk goes into a pool only when nothing on the host uses it (root, /boot, the boot
// medium, swap, a mount, a holder, a multipath sibling), only blank unless the pool wipes it, and a
// wipe needs the disk named by by-id or serial and a host where detection knows which disk holds /.
import { diskContents, diskExclusion, rootDiskUnknown } from "../../checks/resources.js";
import type { DiskReport } from "../../detect/types.js";
import type { Pool } from "../schema.js";
import { type Rule, type RuleInput, rule } from "./types.js";

type PoolDisk = { pool: Pool; i: number; j: number; path: string; disk: DiskReport };

const poolDisks = ({ answer, facts }: RuleInput): PoolDisk[] =>
  (answer.storage?.pools ?? []).flatMap((pool, i) =>
    (pool.disks ?? []).flatMap((_, j) => {
      const path = `storage.pools[${i}].disks[${j}]`;
      const disk = facts.disk(path);
      return disk ? [{ pool, i, j, path, disk }] : [];
    }),
  );

export const storageRules: Rule[] = [
  rule("storage.pool-name", "pool names are unique", ({ answer }, emit) => {
    const names = new Map<string, number>();
    answer.storage?.pools.forEach((pool, i) => {
      const prior = names.get(pool.name);
      if (prior !== undefined)
        emit.error(
          `storage.pools[${i}].name`,
          `duplicate pool name "${pool.name}" (also storage.pools[${prior}])`,
        );
      else names.set(pool.name, i);
    });
  }),
  rule(
    "storage.pool-shape",
    "a dir pool has a path, an lvm-thin or zfs pool has disks",
    ({ answer }, emit) => {
      answer.storage?.pools.forEach((pool, i) => {
        const path = `storage.pools[${i}]`;
        if (pool.type === "dir" && !pool.path) emit.error(path, "a dir pool needs a path");
        if (pool.type !== "dir" && !pool.disks?.length) emit.error(path, `a ${pool.type} pool needs disks`);
      });
    },
  ),
  rule("storage.zfs-missing", "a zfs pool needs the zfs module", ({ answer, report }, emit) => {
    answer.storage?.pools.forEach((pool, i) => {
      if (pool.type === "zfs" && !report.system.zfs)
        emit.error(
          `storage.pools[${i}].type`,
          "this host has no ZFS (the zfs module is not loaded): use dir or lvm-thin",
        );
    });
  }),
  rule("storage.disk-claimed", "a disk is in one pool rule only", (input, emit) => {
    const claimed = new Map<string, string>();
    for (const { path, disk } of poolDisks(input)) {
      const prior = claimed.get(disk.name);
      if (prior) emit.error(path, `${disk.name} is already used by ${prior}`);
      else claimed.set(disk.name, path);
    }
  }),
  rule(
    "storage.disk-in-use",
    "a disk holding root, /boot, the ESP, the boot medium or swap, mounted, held, removable or a multipath member is not free",
    (input, emit) => {
      for (const { pool, path, disk } of poolDisks(input)) {
        const why = diskExclusion(disk, input.report);
        if (why)
          emit.error(
            path,
            pool.wipe
              ? `refusing to wipe ${disk.name}: ${why}`
              : `${disk.name} is not free (${why}): the pool cannot take it over`,
          );
      }
    },
  ),
  rule(
    "storage.not-blank",
    "a disk with partitions or signatures joins a pool only when the pool wipes it",
    (input, emit) => {
      for (const { pool, path, disk } of poolDisks(input)) {
        const what = diskContents(disk);
        if (what && !pool.wipe && !diskExclusion(disk, input.report))
          emit.error(
            path,
            `${disk.name} ${what}: it is not free`,
            "set wipe: true on the pool to erase it (after checking it holds nothing you need), or pick a blank disk",
          );
      }
    },
  ),
  rule("storage.wipe-named", "a wipe needs the disk named by byId or serial", ({ answer, facts }, emit) => {
    answer.storage?.pools.forEach((pool, i) => {
      if (!pool.wipe) return;
      pool.disks?.forEach((r, j) => {
        const path = `storage.pools[${i}].disks[${j}]`;
        const disk = facts.disk(path);
        if (disk && r.byId === undefined && r.serial === undefined)
          emit.error(
            path,
            `a wipe names its disks by byId or serial (this rule picked ${disk.name} by other criteria)`,
            `add byId: ${disk.byId[0]?.replace(/^\/dev\/disk\/by-id\//, "") ?? "(none)"} or serial: ${disk.serial ?? "(none)"}`,
          );
      });
    });
  }),
  rule(
    "storage.root-unknown",
    "no wipe on a host where detection cannot tell which disk holds /",
    ({ answer, report }, emit) => {
      const unknown = rootDiskUnknown(report);
      if (!unknown) return;
      answer.storage?.pools.forEach((pool, i) => {
        if (pool.wipe && pool.disks?.length)
          emit.error(
            `storage.pools[${i}].wipe`,
            `detection cannot tell which disk holds the running system (${unknown}): no disk is known to be safe to wipe`,
            "wipe the disks by hand, or run on a host whose root device detection resolves",
          );
      });
    },
  ),
];
