// The iPXE binaries handed out over TFTP, from --ipxe-dir. Unlike --files (confined to its
// directory by the TFTP library's directorySource), this follows symbolic links out of the
// directory, because Debian's ipxe package links ipxe.efi to /boot/ipxe.efi. In exchange only the
// boot images the directory listed when the server started are served, by exact name.
import { readdir } from "node:fs/promises";
import path from "node:path";
import { openRegularFile, type TftpSource } from "./tftp/index.js";

const BOOT_IMAGE = /\.(efi|kpxe|kkpxe|pxe|lkrn)$/;

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
      return openRegularFile(path.join(dir, name));
    },
  };
}
