// The iPXE binaries handed out over TFTP, from --ipxe-dir. Unlike --files (confined to its
// directory by the TFTP library's directorySource), this follows symbolic links out of the
// directory, because Debian's ipxe package links ipxe.efi to /boot/ipxe.efi. In exchange only the
// boot images the directory listed when the server started are served, by exact name.
import { constants } from "node:fs";
import { open, readdir } from "node:fs/promises";
import path from "node:path";
import { type TftpSource, TftpSourceError } from "./tftp/index.js";

const BOOT_IMAGE = /\.(efi|kpxe|kkpxe|pxe|lkrn)$/;
const ERR_ACCESS = 2;

/** The boot images in `dir` (names only); none when the directory is missing. */
export async function listBootImages(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => BOOT_IMAGE.test(n));
  } catch {
    return [];
  }
}

export function bootImageSource(dir: string, names: string[]): TftpSource {
  const allowed = new Set(names);
  return {
    async open(name) {
      if (!allowed.has(name)) throw Object.assign(new Error("file not found"), { code: "ENOENT" });
      // O_NONBLOCK: a FIFO swapped in for an image cannot hang the open.
      const handle = await open(path.join(dir, name), constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        const stat = await handle.stat();
        if (!stat.isFile()) throw new TftpSourceError(ERR_ACCESS, "not a regular file");
        return {
          size: stat.size,
          async read(offset, length) {
            const buf = Buffer.allocUnsafe(length);
            const { bytesRead } = await handle.read(buf, 0, length, offset);
            return bytesRead === length ? buf : buf.subarray(0, bytesRead);
          },
          close: () => handle.close(),
        };
      } catch (e) {
        await handle.close();
        throw e;
      }
    },
  };
}
