// The appliance's netboot artifacts for the PXE chain tests: iso-build/out/netboot, built from this
// tree by the image tier's own build step (test/image/ensure-image.ts), which builds only when
// iso-build/out/ is not already a build of the current inputs, so CI builds once for both tiers.
// KVMSTRAP_IMAGE_REUSE=1 takes whatever is there (for iterating on these tests only).
import { existsSync } from "node:fs";
import { chmod, link, lstat, mkdir, readFile, realpath, rm, symlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { gunzipSync } from "node:zlib";
// @ts-expect-error: plain ESM without types, the build's own module
import { readCpio } from "../../../iso-build/lib/initramfs.mjs";
import { ensureImage } from "../../image/ensure-image.js";

export const IMAGE_OUT = path.resolve("iso-build/out");
export const NETBOOT = path.join(IMAGE_OUT, "netboot");
export const LOG_DIR = path.join(IMAGE_OUT, "test-logs");

export type NetbootManifest = {
  version: string;
  cmdline: string;
  files: Record<string, { size: number; sha256: string }>;
};

export async function netbootManifest(): Promise<NetbootManifest> {
  return JSON.parse(await readFile(path.join(NETBOOT, "manifest.json"), "utf8")) as NetbootManifest;
}

/** Why the artifacts cannot be had, or undefined once they are there and built from this tree. */
export async function ensureNetboot(): Promise<string | undefined> {
  const have =
    existsSync(path.join(NETBOOT, "manifest.json")) && existsSync(path.join(NETBOOT, "initrd.img"));
  if (have && process.env.KVMSTRAP_IMAGE_REUSE === "1") return undefined;
  if (process.getuid?.() !== 0) return "the image build (iso-build/out/netboot) needs root";
  await ensureImage();
  return undefined;
}

/**
 * Unpacks every archive of the gzip'ed initrd into `dir`, as the kernel does (later entries win).
 * Device nodes are skipped; nothing is written through a link that leads out of `dir`.
 */
export async function extractInitrd(initrd: string, dir: string): Promise<number> {
  const root = await realpath(dir);
  const inside = async (p: string) => {
    const parent = await realpath(path.dirname(p)).catch(() => null);
    return parent !== null && (parent === root || parent.startsWith(`${root}/`));
  };
  let n = 0;
  const linked = new Map<number, string[]>(); // inode -> paths waiting for the entry with the data
  type Entry = { name: string; mode: number; ino: number; nlink: number; data: Buffer };
  for (const e of readCpio(gunzipSync(await readFile(initrd))) as Entry[]) {
    const p = path.join(root, e.name);
    if (e.name === "." || !(await inside(p))) continue;
    const type = e.mode & 0o170000;
    const perm = e.mode & 0o7777;
    if (type === 0o040000) {
      if (!(await lstat(p).catch(() => null))) await mkdir(p);
      continue;
    }
    if (type !== 0o100000 && type !== 0o120000) continue;
    await rm(p, { force: true });
    if (type === 0o120000) await symlink(e.data.toString(), p);
    else if (e.nlink > 1 && e.data.length === 0) {
      linked.set(e.ino, [...(linked.get(e.ino) ?? []), p]);
      await writeFile(p, "");
    } else {
      await writeFile(p, e.data);
      await chmod(p, perm);
      for (const other of linked.get(e.ino) ?? []) {
        await rm(other, { force: true });
        await link(p, other);
      }
      linked.delete(e.ino);
    }
    n++;
  }
  return n;
}
