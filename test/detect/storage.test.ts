import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { detectDisks, detectStorage } from "../../src/detect/storage.js";
import type { DetectContext } from "../../src/detect/sysfs.js";
import type { DiskReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";

async function detect(root: string): Promise<{ disks: DiskReport[]; ctx: DetectContext }> {
  const ctx: DetectContext = { fs: new RootedHostFs(root), warnings: [] };
  return { disks: await detectDisks(ctx), ctx };
}

const byName = (disks: DiskReport[], name: string): DiskReport => {
  const d = disks.find((x) => x.name === name);
  if (!d) throw new Error(`no disk ${name} in ${disks.map((x) => x.name).join(", ")}`);
  return d;
};

if (!sharedHostsAvailable) console.warn(SKIP_REASON);

describe.skipIf(!sharedHostsAvailable)("detectDisks on shared real-machine snapshots", () => {
  it("AMD desktop: three SATA disks behind one controller, five dm devices, no root tie", async () => {
    const { disks, ctx } = await detect(sharedHostRoot("amd-ryzen-1600-desktop"));
    expect(disks.map((d) => d.name)).toEqual(["dm-0", "dm-1", "dm-2", "dm-3", "dm-4", "sda", "sdb", "sdc"]);
    for (const dm of disks.filter((d) => d.name.startsWith("dm-"))) {
      expect(dm.virtual).toBe(true);
      expect(dm.transport).toBeNull();
      expect(dm.pciAddress).toBeNull();
    }
    // dm-0/size = 188743680 sectors, dm-1/queue/rotational = 1
    expect(byName(disks, "dm-0").sizeBytes).toBe(188743680 * 512);
    expect(byName(disks, "dm-1").rotational).toBe(true);

    const sda = byName(disks, "sda");
    expect(sda.virtual).toBe(false);
    expect(sda.sizeBytes).toBe(500118192 * 512);
    expect(sda.transport).toBe("sata");
    expect(sda.pciAddress).toBe("0000:01:00.1");
    expect(sda.rotational).toBe(false);
    expect(sda.partitions.map((p) => [p.name, p.sizeBytes])).toEqual([
      ["sda1", 262144 * 512],
      ["sda2", 786432 * 512],
      ["sda3", 499067535 * 512],
    ]);
    expect(sda.sources.sizeBytes).toBe(
      "/sys/devices/pci0000:00/0000:00:01.3/0000:01:00.1/ata1/host0/target0:0:0/0:0:0:0/block/sda/size",
    );
    const sdb = byName(disks, "sdb");
    expect(sdb.sizeBytes).toBe(1953525168 * 512);
    expect(sdb.rotational).toBe(true);
    expect(sdb.partitions.map((p) => p.name)).toEqual(["sdb1", "sdb2"]);
    expect(byName(disks, "sdc").partitions.map((p) => p.name)).toEqual(["sdc1", "sdc2"]);
    // The snapshot's only mount table is etc/mtab -> /proc/self/mounts (absolute), which it lacks: the
    // mounts are unknown (never the mounts of the machine running the test), and a warning says so.
    for (const d of disks) expect(d.roles).toEqual([]);
    for (const d of disks) expect(d.mountpoints).toEqual([]);
    expect(ctx.warnings).toEqual([
      expect.objectContaining({
        path: "/proc/self/mounts",
        message: expect.stringContaining("no mount table"),
      }),
    ]);
  });

  it("laptop: NVMe namespace with three partitions, /boot and the ESP on it, root on an untied dm", async () => {
    const { disks, ctx } = await detect(sharedHostRoot("intel-i7-1270p-laptop"));
    expect(disks.map((d) => d.name)).toEqual(["dm-0", "nvme0n1", "zram0"]);
    const nvme = byName(disks, "nvme0n1");
    expect(nvme.transport).toBe("nvme");
    expect(nvme.pciAddress).toBe("0000:04:00.0");
    expect(nvme.sizeBytes).toBe(2000409264 * 512);
    expect(nvme.wwn).toBe("eui.002538bc21b15601");
    expect(nvme.partitions.map((p) => p.name)).toEqual(["nvme0n1p1", "nvme0n1p2", "nvme0n1p3"]);
    const [p1, p2, p3] = nvme.partitions;
    expect(p1?.mountpoints).toEqual(["/boot/efi"]);
    expect(p1?.fstype).toBe("vfat");
    expect(p2?.mountpoints).toEqual(["/boot"]);
    expect(p2?.fstype).toBe("ext4");
    expect(p3?.mountpoints).toEqual([]);
    expect(nvme.roles).toEqual(["boot", "efi"]);
    // / is /dev/mapper/luks-...; no dm/name in the snapshot ties it to dm-0, so nobody is "root".
    expect(disks.some((d) => d.roles.includes("root"))).toBe(false);
    expect(
      ctx.warnings.some((w) => w.path === "/proc/self/mounts" && w.message.includes("/dev/mapper/luks-")),
    ).toBe(true);
    expect(byName(disks, "zram0").virtual).toBe(true);
    expect(byName(disks, "dm-0").virtual).toBe(true);
  });

  it("Xeon guest: virtio vda with its controller address and /boot on vda2, SATA CD-ROM sr0", async () => {
    const { disks } = await detect(sharedHostRoot("intel-xeon-gold-5218r-server"));
    expect(disks.map((d) => d.name)).toEqual(["dm-0", "sr0", "vda", "zram0"]);
    const vda = byName(disks, "vda");
    expect(vda.transport).toBe("virtio");
    expect(vda.pciAddress).toBe("0000:04:00.0");
    expect(vda.sizeBytes).toBe(41943040 * 512);
    expect(vda.serial).toBeNull(); // vda/serial is empty
    expect(vda.partitions.map((p) => p.name)).toEqual(["vda1", "vda2", "vda3"]);
    expect(vda.partitions[1]?.mountpoints).toEqual(["/boot"]);
    expect(vda.partitions[1]?.fstype).toBe("xfs");
    expect(vda.roles).toEqual(["boot"]);
    const sr0 = byName(disks, "sr0");
    expect(sr0.removable).toBe(true);
    expect(sr0.transport).toBe("sata");
    expect(sr0.pciAddress).toBe("0000:00:1f.2");
    expect(sr0.sizeBytes).toBe(4 * 512);
    expect(sr0.partitions).toEqual([]);
  });

  it("a guest snapshot without /sys/block has no disks and no warnings", async () => {
    const { disks, ctx } = await detect(sharedHostRoot("kvm-guest-skylake-offline-cpus"));
    expect(disks).toEqual([]);
    expect(ctx.warnings).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------------
// Synthetic roots

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function tree(): {
  root: string;
  file: (p: string, text: string) => void;
  link: (p: string, target: string) => void;
} {
  const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-storage-"));
  roots.push(root);
  const file = (p: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), text);
  };
  const link = (p: string, target: string) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    symlinkSync(target, path.join(root, p));
  };
  return { root, file, link };
}

const SATA = "/sys/devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0";
const SATA2 = "/sys/devices/pci0000:00/0000:00:17.0/ata2/host1/target1:0:0/1:0:0:0";
const USB = "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host2/target2:0:0/2:0:0:0";

function scsiDisk(
  t: ReturnType<typeof tree>,
  dev: string,
  name: string,
  majMin: string,
  parts: { n: number; size: number; majMin: string; holders?: string[] }[],
) {
  const base = `${dev}/block/${name}`;
  t.link(`/sys/block/${name}`, `..${base.slice(4)}`);
  t.file(`${base}/size`, "1000000\n");
  t.file(`${base}/dev`, `${majMin}\n`);
  t.file(`${base}/queue/rotational`, "0\n");
  t.file(`${base}/removable`, "0\n");
  t.file(`${base}/ro`, "0\n");
  mkdirSync(path.join(t.root, base, "holders"), { recursive: true });
  for (const p of parts) {
    const pb = `${base}/${name}${p.n}`;
    t.file(`${pb}/partition`, `${p.n}\n`);
    t.file(`${pb}/size`, `${p.size}\n`);
    t.file(`${pb}/dev`, `${p.majMin}\n`);
    mkdirSync(path.join(t.root, pb, "holders"), { recursive: true });
    for (const h of p.holders ?? [])
      t.link(`${pb}/holders/${h}`, `../../../../../../../../../virtual/block/${h}`);
  }
}

function dm(
  t: ReturnType<typeof tree>,
  name: string,
  majMin: string,
  slaves: string[],
  dmName: string | null,
) {
  const base = `/sys/devices/virtual/block/${name}`;
  t.link(`/sys/block/${name}`, `../devices/virtual/block/${name}`);
  t.file(`${base}/size`, "2048\n");
  t.file(`${base}/dev`, `${majMin}\n`);
  t.file(`${base}/ro`, "0\n");
  t.file(`${base}/removable`, "0\n");
  mkdirSync(path.join(t.root, base, "slaves"), { recursive: true });
  for (const s of slaves) writeFileSync(path.join(t.root, base, "slaves", s), "");
  if (dmName) t.file(`${base}/dm/name`, `${dmName}\n`);
}

describe("detectDisks on a synthetic root", () => {
  it("ties by-id links, udev signatures, mounts through holders, swap and the boot medium to disks", async () => {
    const t = tree();
    // sda: sda1 at /, sda2 a ZFS member. sdb: sdb1 an LVM PV under dm-0 (vg0-boot at /boot), sdb2 swap.
    scsiDisk(t, SATA, "sda", "8:0", [
      { n: 1, size: 2048, majMin: "8:1" },
      { n: 2, size: 4096, majMin: "8:2" },
    ]);
    t.file(`${SATA}/model`, "ACME SSD 1TB    \n");
    t.file(`${SATA}/wwid`, "naa.5000000000000001\n");
    t.link(`${SATA}/block/sda/device`, "../../../0:0:0:0");
    scsiDisk(t, SATA2, "sdb", "8:16", [
      { n: 1, size: 2048, majMin: "8:17", holders: ["dm-0"] },
      { n: 2, size: 2048, majMin: "8:18" },
    ]);
    // The slaves/ side alone also ties dm-1 to sdc1 (no holders/ entry there).
    scsiDisk(t, USB, "sdc", "8:32", [{ n: 1, size: 2048, majMin: "8:33" }]);
    dm(t, "dm-0", "253:0", ["sdb1"], "vg0-boot");
    dm(t, "dm-1", "253:1", ["sdc1"], "vg1-data");
    // Boot medium: sr0 mounted at /run/live/medium (iso9660).
    const sr = "/sys/devices/pci0000:00/0000:00:17.0/ata3/host2/target2:0:0/2:0:0:0/block/sr0";
    t.link("/sys/block/sr0", `..${sr.slice(4)}`);
    t.file(`${sr}/size`, "1024\n");
    t.file(`${sr}/dev`, "11:0\n");
    t.file(`${sr}/removable`, "1\n");
    // Loop devices: size 0 is skipped, a used one is reported as virtual.
    t.link("/sys/block/loop0", "../devices/virtual/block/loop0");
    t.file("/sys/devices/virtual/block/loop0/size", "0\n");
    t.link("/sys/block/loop1", "../devices/virtual/block/loop1");
    t.file("/sys/devices/virtual/block/loop1/size", "100\n");

    t.link("/dev/disk/by-id/ata-ACME_SSD_1TB_SER123456", "../../sda");
    t.link("/dev/disk/by-id/ata-ACME_SSD_1TB_SER123456-part2", "../../sda2");
    t.link("/dev/disk/by-id/wwn-0x5000000000000001", "../../sda");
    t.link("/dev/disk/by-id/dm-name-vg0-boot", "../../dm-0");
    t.file(
      "/run/udev/data/b8:0",
      "S:disk/by-path/pci-0000:00:17.0-ata-1\nE:ID_PART_TABLE_TYPE=gpt\nE:ID_SERIAL_SHORT=SER123456\n",
    );
    t.file("/run/udev/data/b8:1", "E:ID_FS_TYPE=ext4\n");
    t.file("/run/udev/data/b8:2", "E:ID_FS_TYPE=zfs_member\nE:ID_FS_LABEL=tank\n");
    t.file("/run/udev/data/b8:17", "E:ID_FS_TYPE=LVM2_member\n");
    t.file("/run/udev/data/b8:16", "E:ID_MODEL_ENC=Other\\x20Disk\\x20\nE:ID_WWN=0x5000000000000002\n");
    t.file(
      "/proc/self/mounts",
      [
        "/dev/sda1 / ext4 rw 0 0",
        "/dev/mapper/vg0-boot /boot ext4 rw 0 0",
        "/dev/dm-1 /srv xfs rw 0 0",
        "/dev/sr0 /run/live/medium iso9660 ro 0 0",
        "tmpfs /run tmpfs rw 0 0",
        "",
      ].join("\n"),
    );
    t.file("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/sdb2  partition\t1020\t0\t-2\n");

    const { disks, ctx } = await detect(t.root);
    expect(disks.map((d) => d.name)).toEqual(["dm-0", "dm-1", "loop1", "sda", "sdb", "sdc", "sr0"]);

    const sda = byName(disks, "sda");
    expect(sda.byId).toEqual([
      "/dev/disk/by-id/ata-ACME_SSD_1TB_SER123456",
      "/dev/disk/by-id/wwn-0x5000000000000001",
    ]);
    expect(sda.partitions[1]?.byId).toEqual(["/dev/disk/by-id/ata-ACME_SSD_1TB_SER123456-part2"]);
    expect(sda.model).toBe("ACME SSD 1TB");
    expect(sda.sources.model).toBe(`${SATA}/block/sda/device/model`);
    expect(sda.serial).toBe("SER123456");
    expect(sda.sources.serial).toBe("/run/udev/data/b8:0");
    expect(sda.wwn).toBe("naa.5000000000000001");
    expect(sda.signatures.sort()).toEqual(["ext4", "gpt", "zfs_member"]);
    expect(sda.partitions.map((p) => p.fstype)).toEqual(["ext4", "zfs_member"]);
    expect(sda.partitions[0]?.mountpoints).toEqual(["/"]);
    expect(sda.roles).toEqual(["root"]);
    expect(sda.transport).toBe("sata");
    expect(sda.pciAddress).toBe("0000:00:17.0");

    const sdb = byName(disks, "sdb");
    expect(sdb.model).toBe("Other Disk");
    expect(sdb.wwn).toBe("0x5000000000000002");
    expect(sdb.partitions[0]?.holders).toEqual(["dm-0"]);
    expect(sdb.partitions[0]?.mountpoints).toEqual(["/boot"]);
    expect(sdb.holders).toEqual(["dm-0"]);
    expect(sdb.signatures).toContain("LVM2_member");
    expect(sdb.roles).toEqual(["boot", "swap"]);
    expect(sdb.partitions[1]?.fstype).toBe("swap");

    const sdc = byName(disks, "sdc");
    expect(sdc.transport).toBe("usb");
    expect(sdc.holders).toEqual(["dm-1"]);
    expect(sdc.mountpoints).toEqual(["/srv"]);
    expect(sdc.roles).toEqual([]);

    const dm0 = byName(disks, "dm-0");
    expect(dm0.virtual).toBe(true);
    expect(dm0.byId).toEqual(["/dev/disk/by-id/dm-name-vg0-boot"]);
    expect(dm0.roles).toEqual(["boot"]);

    const sr0 = byName(disks, "sr0");
    expect(sr0.roles).toEqual(["boot-medium"]);
    expect(sr0.removable).toBe(true);
    expect(byName(disks, "loop1").virtual).toBe(true);
    expect(ctx.warnings).toEqual([]);
  });

  it("an untied /dev/mapper root marks no disk and warns; a dm name from by-id ties it", async () => {
    const t = tree();
    scsiDisk(t, SATA, "sda", "8:0", [{ n: 1, size: 2048, majMin: "8:1", holders: ["dm-0"] }]);
    dm(t, "dm-0", "253:0", ["sda1"], null);
    t.file("/proc/mounts", "/dev/mapper/cryptroot / ext4 rw 0 0\n");
    let r = await detect(t.root);
    expect(byName(r.disks, "sda").roles).toEqual([]);
    expect(byName(r.disks, "sda").holders).toEqual(["dm-0"]);
    expect(r.ctx.warnings).toEqual([
      expect.objectContaining({
        path: "/proc/mounts",
        message: expect.stringContaining("/dev/mapper/cryptroot"),
      }),
    ]);

    // /dev/mapper/NAME as a captured link names the device: now it is tied.
    t.link("/dev/mapper/cryptroot", "../dm-0");
    r = await detect(t.root);
    expect(byName(r.disks, "sda").roles).toEqual(["root"]);
    expect(byName(r.disks, "dm-0").roles).toEqual(["root"]);
    expect(r.ctx.warnings).toEqual([]);
  });

  it("says as a fact (rootDisk) whether it knows which disk holds /, and why not", async () => {
    const t = tree();
    scsiDisk(t, SATA, "sda", "8:0", [{ n: 1, size: 2048, majMin: "8:1", holders: ["dm-0"] }]);
    dm(t, "dm-0", "253:0", ["sda1"], null);
    t.file("/proc/mounts", "/dev/mapper/cryptroot / ext4 rw 0 0\n");
    const fs = () => ({ fs: new RootedHostFs(t.root), warnings: [] });
    expect((await detectStorage(fs())).rootDisk).toEqual({
      known: false,
      disks: [],
      reason: expect.stringMatching(
        /^\/proc\/mounts: cannot tell which disk holds \/ \(\/dev\/mapper\/cryptroot\)/,
      ),
    });
    t.link("/dev/mapper/cryptroot", "../dm-0");
    expect((await detectStorage(fs())).rootDisk).toEqual({
      known: true,
      disks: ["dm-0", "sda"],
      reason: null,
    });
  });

  it("falls back from /proc/self/mounts to /proc/mounts to /etc/mtab", async () => {
    const t = tree();
    scsiDisk(t, SATA, "sda", "8:0", [{ n: 1, size: 2048, majMin: "8:1" }]);
    t.file("/etc/mtab", "/dev/sda1 /efi vfat rw 0 0\n");
    const { disks } = await detect(t.root);
    expect(byName(disks, "sda").roles).toEqual(["efi"]);
    expect(byName(disks, "sda").sources.roles).toBe("/etc/mtab");
  });

  it("garbage and dangling files give nulls and warnings naming the file, never a throw", async () => {
    const t = tree();
    scsiDisk(t, SATA, "sda", "8:0", [{ n: 1, size: 2048, majMin: "8:1" }]);
    t.file(`${SATA}/block/sda/size`, "lots\n");
    t.file(`${SATA}/block/sda/queue/rotational`, "maybe\n");
    t.file(`${SATA}/block/sda/sda1/dev`, "8-1\n");
    t.link("/sys/block/sdz", "../devices/pci0000:00/0000:00:17.0/ata9/host8/target8:0:0/8:0:0:0/block/sdz");
    const { disks, ctx } = await detect(t.root);
    const sda = byName(disks, "sda");
    expect(sda.sizeBytes).toBeNull();
    expect(sda.sources.sizeBytes).toBeUndefined();
    expect(sda.rotational).toBeNull();
    expect(sda.partitions[0]?.sizeBytes).toBe(2048 * 512);
    const sdz = byName(disks, "sdz");
    expect(sdz).toMatchObject({ sizeBytes: null, model: null, transport: null, partitions: [], roles: [] });
    const paths = ctx.warnings.map((w) => w.path);
    expect(paths).toContain(`${SATA}/block/sda/size`);
    expect(paths).toContain(`${SATA}/block/sda/queue/rotational`);
    expect(paths).toContain(`${SATA}/block/sda/sda1/dev`);
    expect(paths).toContain("/sys/block/sdz");
    expect(ctx.warnings.find((w) => w.path === "/sys/block/sdz")?.message).toMatch(/leads nowhere/);
  });
});
