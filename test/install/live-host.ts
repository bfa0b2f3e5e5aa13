// Synthetic machine roots as the appliance sees them: live-boot on the kernel command line, udev's
// database with serials and filesystem labels, /dev/disk/by-id links, the mount table. Laid out as
// the kernel shows sysfs (relative /sys/block links into /sys/devices), so the real detection reads
// them. Each disk is given by what identifies it, so a test can boot "the same machine" with the
// kernel names shuffled and see that identity, not the name, decides.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

export interface DiskSpec {
  name: string;
  /** sata, usb, virtio, cdrom: where the disk sits in /sys/devices. */
  bus: "sata" | "usb" | "virtio" | "cdrom";
  majMin: string;
  sizeBytes: number;
  serial?: string;
  model?: string;
  removable?: boolean;
  /** The whole disk's filesystem (an ISO written to a stick): type, label, UUID. */
  fs?: { type: string; label?: string; uuid?: string };
  partitions?: {
    n: number;
    majMin: string;
    sizeBytes: number;
    fs?: { type: string; label?: string; uuid?: string };
  }[];
}

export interface LiveHostSpec {
  disks: DiskSpec[];
  /** Mount table lines: device mountpoint fstype. */
  mounts: [string, string, string][];
  cmdline?: string;
}

const BUS: Record<DiskSpec["bus"], (i: number) => string> = {
  sata: (i) => `/sys/devices/pci0000:00/0000:00:1f.2/ata${i + 1}/host${i}/target${i}:0:0/${i}:0:0:0`,
  usb: (i) => `/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host${i}/target${i}:0:0/${i}:0:0:0`,
  cdrom: (i) => `/sys/devices/pci0000:00/0000:00:1f.2/ata${i + 1}/host${i}/target${i}:0:0/${i}:0:0:0`,
  virtio: (i) => `/sys/devices/pci0000:00/0000:00:0${i + 3}.0/virtio${i}`,
};
const ID_BUS = { sata: "ata", usb: "usb", cdrom: "ata", virtio: "virtio" } as const;

export const byIdOf = (d: DiskSpec) =>
  d.serial
    ? `/dev/disk/by-id/${ID_BUS[d.bus]}-${(d.model ?? "DISK").replace(/\s+/g, "_")}_${d.serial}`
    : null;

export function liveHost(spec: LiveHostSpec): { root: string; cleanup: () => void } {
  const root = mkdtempSync(path.join(tmpdir(), "kvmstrap-livehost-"));
  const file = (p: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), text);
  };
  const link = (p: string, target: string) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    symlinkSync(target, path.join(root, p));
  };
  const udev = (majMin: string, lines: string[]) =>
    file(`/run/udev/data/b${majMin}`, `${lines.join("\n")}\n`);
  const fsLines = (f?: { type: string; label?: string; uuid?: string }) =>
    f
      ? [
          `E:ID_FS_TYPE=${f.type}`,
          ...(f.label ? [`E:ID_FS_LABEL=${f.label}`] : []),
          ...(f.uuid ? [`E:ID_FS_UUID=${f.uuid}`] : []),
        ]
      : [];
  spec.disks.forEach((d, i) => {
    const base = `${BUS[d.bus](i)}/block/${d.name}`;
    link(`/sys/block/${d.name}`, `..${base.slice(4)}`);
    file(`${base}/size`, `${d.sizeBytes / 512}\n`);
    file(`${base}/dev`, `${d.majMin}\n`);
    file(`${base}/queue/rotational`, "0\n");
    file(`${base}/removable`, d.removable ? "1\n" : "0\n");
    file(`${base}/ro`, d.bus === "cdrom" ? "1\n" : "0\n");
    mkdirSync(path.join(root, base, "holders"), { recursive: true });
    if (d.model && d.bus !== "virtio") file(`${base}/device/model`, `${d.model}\n`);
    if (d.serial && d.bus === "virtio") file(`${base}/serial`, `${d.serial}\n`);
    const id = byIdOf(d);
    udev(d.majMin, [
      ...(d.serial ? [`E:ID_SERIAL_SHORT=${d.serial}`] : []),
      ...(d.partitions?.length ? ["E:ID_PART_TABLE_TYPE=gpt"] : []),
      ...fsLines(d.fs),
      ...(id ? [`S:${id.slice(5)}`] : []),
    ]);
    if (id) link(id, `../../${d.name}`);
    for (const p of d.partitions ?? []) {
      const pname = `${d.name}${p.n}`;
      file(`${base}/${pname}/partition`, `${p.n}\n`);
      file(`${base}/${pname}/size`, `${p.sizeBytes / 512}\n`);
      file(`${base}/${pname}/dev`, `${p.majMin}\n`);
      mkdirSync(path.join(root, base, pname, "holders"), { recursive: true });
      udev(p.majMin, [...fsLines(p.fs), ...(id ? [`S:${id.slice(5)}-part${p.n}`] : [])]);
      if (id) link(`${id}-part${p.n}`, `../../${pname}`);
    }
  });
  file(
    "/proc/self/mounts",
    `${[["overlay", "/", "overlay"], ...spec.mounts].map(([dev, mp, t]) => `${dev} ${mp} ${t} ro 0 0`).join("\n")}\n`,
  );
  file("/proc/cmdline", `${spec.cmdline ?? "BOOT_IMAGE=/live/vmlinuz boot=live quiet console=ttyS0"}\n`);
  file("/proc/swaps", "Filename Type Size Used Priority\n");
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

const GiB = 1024 ** 3;
/** The ISO written to a USB stick: one iso9660 filesystem over the whole disk, labelled KVMSTRAP. */
export const ISO_FS = { type: "iso9660", label: "KVMSTRAP", uuid: "2026-12-05-12-00-00-00" };

export const TARGET: DiskSpec = {
  name: "vda",
  bus: "virtio",
  majMin: "254:0",
  sizeBytes: 32 * GiB,
  serial: "KVMSTRAP-TARGET",
};
export const DATA: DiskSpec = {
  name: "sda",
  bus: "sata",
  majMin: "8:0",
  sizeBytes: 500 * GiB,
  serial: "WD-DATA0001",
  model: "WDC WD5000",
  partitions: [{ n: 1, majMin: "8:1", sizeBytes: 499 * GiB, fs: { type: "xfs", uuid: "0b9c1c36-data" } }],
};
export const STICK: DiskSpec = {
  name: "sdb",
  bus: "usb",
  majMin: "8:16",
  sizeBytes: 16 * GiB,
  serial: "USBSTICK42",
  model: "SanDisk Ultra",
  removable: true,
  fs: ISO_FS,
};
export const BLANK_USB: DiskSpec = {
  name: "sdc",
  bus: "usb",
  majMin: "8:32",
  sizeBytes: 64 * GiB,
  serial: "USBSSD77",
  model: "Samsung T7",
};
export const CDROM: DiskSpec = {
  name: "sr0",
  bus: "cdrom",
  majMin: "11:0",
  sizeBytes: 400 * 1024 ** 2,
  model: "QEMU DVD-ROM",
  removable: true,
  fs: ISO_FS,
};
