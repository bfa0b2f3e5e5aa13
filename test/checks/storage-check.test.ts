// The storage readiness check calls a disk free only when a pool could take it as it is: partitioned
// disks, disks with signatures and multipath siblings are named for what they hold.
import { describe, expect, it } from "vitest";
import { storageCheck } from "../../src/checks/resources.js";
import { disk, labReport } from "../answer/hosts.js";

describe("storage.disks", () => {
  it("a partitioned disk, a disk with a signature and two paths to one LUN are not free", async () => {
    const report = await labReport();
    report.disks = [
      disk({ name: "sda", roles: ["root"] }),
      disk({
        name: "sdb",
        partitions: [{ name: "sdb1", sizeBytes: null, mountpoints: [], holders: [], fstype: null }],
      }),
      disk({ name: "sdc", signatures: ["zfs_member"] }),
      disk({ name: "sdd", wwn: "naa.5000c500a1b2c3d4" }),
      disk({ name: "sde", wwn: "naa.5000c500a1b2c3d4" }),
      disk({ name: "sdf" }),
    ];
    expect(storageCheck(report).reason).toBe(
      "6 disks: sda (holds root), sdb (has partition sdb1), sdc (holds zfs_member signatures), " +
        "sdd (a multipath member (same WWN as sde)), sde (a multipath member (same WWN as sdd)), sdf (free); " +
        "1 usable for a new pool",
    );
  });
});
