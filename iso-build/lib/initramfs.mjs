// kvmstrap's additions to the live root's initrd (iso-build/initramfs/: the fetch= retry and
// checksum, see usr/lib/live/boot/9991-kvmstrap-fetch.sh), appended as a second gzip'ed cpio.
//
// Why appended and not built into the root: the kernel unpacks concatenated initramfs archives in
// order (Documentation/driver-api/early-userspace/buffer-format.rst), so this costs milliseconds per
// build, leaves the cached live root and its key alone (no mkinitramfs in a chroot, nothing written
// through the hard-linked staging tree), and the result is still one gzip file iPXE can load.
// The newc writer is by hand: the build host has no cpio(1), the format is a fixed 110-byte header,
// and writing it here keeps every byte (owner root, mtime SOURCE_DATE_EPOCH) reproducible.
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";

const pad4 = (n) => (4 - (n % 4)) % 4;
const hex = (n) => n.toString(16).padStart(8, "0");

function entry(name, mode, data, mtime, ino) {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [ino, mode, 0, 0, 1, mtime, data.length, 0, 0, 0, 0, nameBytes.length, 0];
  const header = Buffer.from(`070701${fields.map(hex).join("")}`, "ascii");
  return Buffer.concat([
    header,
    nameBytes,
    Buffer.alloc(pad4(header.length + nameBytes.length)),
    data,
    Buffer.alloc(pad4(data.length)),
  ]);
}

/** Regular files under dir (relative paths, sorted), for the archive and for the build's log. */
export async function overlayFiles(dir, rel = "") {
  const out = [];
  const entries = (await readdir(path.join(dir, rel), { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  );
  for (const e of entries) {
    const r = path.posix.join(rel, e.name);
    if (e.isDirectory()) out.push(...(await overlayFiles(dir, r)));
    else if (e.isFile()) out.push(r);
    else throw new Error(`${path.join(dir, r)}: only regular files belong in the initramfs overlay`);
  }
  return out;
}

/**
 * A gzip'ed newc cpio of dir's regular files (no directory entries: the first archive made them;
 * one would chmod an existing directory). Files keep their permission bits; owner root, mtime epoch.
 */
export async function overlayCpio(dir, epoch) {
  const parts = [];
  let ino = 0x4b560000; // apart from the first archive's inode numbers (hard-link detection)
  for (const rel of await overlayFiles(dir)) {
    const file = path.join(dir, rel);
    const mode = 0o100000 | ((await stat(file)).mode & 0o7777);
    parts.push(entry(rel, mode, await readFile(file), epoch, ino++));
  }
  parts.push(entry("TRAILER!!!", 0, Buffer.alloc(0), 0, 0));
  const cpio = Buffer.concat(parts);
  return gzipSync(Buffer.concat([cpio, Buffer.alloc(pad4(cpio.length))]), { level: 9 });
}

/** The newc entries of a (decompressed) initramfs stream, every archive of it, for checks and tests. */
export function readCpio(buf) {
  const out = [];
  let i = 0;
  while (i + 110 <= buf.length) {
    if (buf[i] === 0) {
      i++; // padding between archives
      continue;
    }
    const magic = buf.toString("ascii", i, i + 6);
    if (magic !== "070701" && magic !== "070702") throw new Error(`not a newc cpio at offset ${i}`);
    const field = (k) => Number.parseInt(buf.toString("ascii", i + 6 + k * 8, i + 14 + k * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameSize = field(11);
    const nameStart = i + 110;
    const name = buf.toString("utf8", nameStart, nameStart + nameSize - 1);
    const dataStart = nameStart + nameSize + pad4(110 + nameSize);
    if (name !== "TRAILER!!!") {
      // Hard links (nlink > 1) share an inode number; only the last of them carries the data.
      out.push({
        name,
        mode,
        ino: field(0),
        nlink: field(4),
        data: buf.subarray(dataStart, dataStart + size),
      });
    }
    i = dataStart + size + pad4(size);
  }
  return out;
}

/** The initrd (gzip, every member) carries each overlay file as its last version, byte for byte. */
export async function checkInitrdOverlay(initrd, dir) {
  const { gunzipSync } = await import("node:zlib");
  const entries = readCpio(gunzipSync(await readFile(initrd)));
  for (const rel of await overlayFiles(dir)) {
    const last = entries.findLast((e) => e.name === rel);
    if (!last?.data.equals(await readFile(path.join(dir, rel)))) {
      throw new Error(`${initrd}: ${rel} from ${dir} is missing or differs`);
    }
  }
}
