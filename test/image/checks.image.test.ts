// The build's pre-publication checks (iso-build/lib/checks.mjs) refuse what would not boot: a
// squashfs without its mount points (what `mksquashfs -e proc sys dev run` made), an ISO without a
// UEFI image or a partition table, a zstd initrd. Small inputs made here with the same tools.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// @ts-expect-error: plain ESM without types, the build's own module
import { checkGzip, checkIso, checkSquashfs } from "../../iso-build/lib/checks.mjs";

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-checks-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tree(name: string, dirs: string[]): Promise<string> {
  const root = path.join(dir, name);
  for (const d of dirs) await mkdir(path.join(root, d), { recursive: true });
  for (const f of [
    "opt/kvmstrap/node/bin/node",
    "opt/kvmstrap/bin/kvmstrap.js",
    "opt/kvmstrap/dist/cli/main.js",
    "usr/local/bin/kvmstrap",
  ]) {
    await mkdir(path.dirname(path.join(root, f)), { recursive: true });
    await writeFile(path.join(root, f), "");
  }
  return root;
}

describe("the image build's checks", () => {
  it("accept a squashfs with /proc, /sys, /dev, /run, /tmp and kvmstrap", async () => {
    const root = await tree("good", ["proc", "sys", "dev", "run", "tmp"]);
    await execa("mksquashfs", [root, path.join(dir, "good.sqfs"), "-noappend", "-no-progress"]);
    expect(await checkSquashfs(path.join(dir, "good.sqfs"))).toBeGreaterThan(5);
  });

  it("refuse a squashfs whose mount points were excluded", async () => {
    const root = await tree("bad", ["proc", "sys", "dev", "run", "tmp"]);
    const sqfs = path.join(dir, "bad.sqfs");
    await execa("mksquashfs", [root, sqfs, "-noappend", "-no-progress", "-e", "proc", "sys", "dev", "run"]);
    await expect(checkSquashfs(sqfs)).rejects.toThrow(/bad\.sqfs: missing \/proc, \/sys, \/dev, \/run$/);
  });

  it("refuse an ISO with no boot images and no partition table", async () => {
    const root = await tree("iso", []);
    const iso = path.join(dir, "plain.iso");
    await execa("xorriso", ["-as", "mkisofs", "-o", iso, root]);
    await expect(checkIso(iso)).rejects.toThrow(/plain\.iso: no BIOS El Torito boot image/);
  });

  it("refuse a zstd initrd and accept a gzip one", async () => {
    await writeFile(path.join(dir, "initrd.zst"), Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0]));
    await expect(checkGzip(path.join(dir, "initrd.zst"))).rejects.toThrow(/initrd\.zst: not gzip/);
    await execa("sh", ["-c", `echo x | gzip > ${path.join(dir, "initrd.gz")}`]);
    await expect(checkGzip(path.join(dir, "initrd.gz"))).resolves.toBeUndefined();
  });
});
