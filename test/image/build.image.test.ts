// The published outputs of `npm run image`, read back with the tools a user would use: the ISO's
// El Torito catalogue and partition table, the netboot set's checksums and manifest, the gzip initrd.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { isoPath, type Manifest, manifest, NETBOOT, secureBootIsoPath } from "./image.js";

let iso = "";
let m: Manifest;
beforeAll(async () => {
  iso = await isoPath();
  m = await manifest();
});

describe("npm run image", () => {
  it("makes an ISO with BIOS and UEFI El Torito images, a GPT for USB sticks, under 400 MiB", async () => {
    const report = (await execa("xorriso", ["-indev", iso, "-report_el_torito", "plain"])).stdout;
    expect(report).toMatch(/^El Torito boot img :\s+\d+\s+BIOS\s+y/m);
    expect(report).toMatch(/^El Torito boot img :\s+\d+\s+UEFI\s+y/m);
    const table = (await execa("sfdisk", ["-l", iso])).stdout;
    expect(table).toMatch(/EFI System/);
    expect((await stat(iso)).size).toBeLessThan(400 * 1024 ** 2);
    expect(m.iso.size).toBe((await stat(iso)).size);
  });

  it("makes a Secure Boot ISO: a UEFI El Torito image and an EFI System partition from Debian's signed shim", async () => {
    const sb = await secureBootIsoPath();
    const report = (await execa("xorriso", ["-indev", sb, "-report_el_torito", "plain"])).stdout;
    expect(report).toMatch(/^El Torito boot img :\s+\d+\s+UEFI\s+y/m);
    expect((await execa("sfdisk", ["-l", sb])).stdout).toMatch(/EFI System/);
    expect(Object.keys(m.secureBootIso.signedBy).sort()).toEqual(
      ["grub-efi-amd64-signed", "shim-helpers-amd64-signed", "shim-signed"].sort(),
    );
    expect(m.secureBootIso.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("makes a netboot set whose SHA256SUMS and manifest match the files", async () => {
    const sums = (await readFile(path.join(NETBOOT, "SHA256SUMS"), "utf8")).trim().split("\n");
    expect(sums.map((l) => l.split(/\s+/)[1]).sort()).toEqual(
      ["boot.ipxe", "filesystem.squashfs", "grub-local.efi", "initrd.img", "vmlinuz"].sort(),
    );
    for (const line of sums) {
      const [sum, name] = line.split(/\s+/) as [string, string];
      const bytes = await readFile(path.join(NETBOOT, name));
      expect(createHash("sha256").update(bytes).digest("hex"), name).toBe(sum);
      expect(m.files[name]?.sha256, name).toBe(sum);
      expect(m.files[name]?.size, name).toBe(bytes.length);
    }
    // The UEFI local-boot loader is a PE/COFF image (an EFI application): "MZ" first.
    expect((await readFile(path.join(NETBOOT, "grub-local.efi"))).subarray(0, 2).toString("latin1")).toBe(
      "MZ",
    );
    expect(m.node).toBe("v20.20.2");
    expect(m.cmdline).toMatch(/^boot=live fetch=@BASE@\/filesystem\.squashfs .*console=ttyS0,115200/);
  });

  it("makes a gzip initrd (iPXE cannot load zstd) and a boot.ipxe that fetches the squashfs", async () => {
    const head = (await readFile(path.join(NETBOOT, "initrd.img"))).subarray(0, 2);
    expect([...head]).toEqual([0x1f, 0x8b]);
    const ipxe = await readFile(path.join(NETBOOT, "boot.ipxe"), "utf8");
    expect(ipxe).toMatch(/^#!ipxe\n/);
    expect(ipxe).toMatch(/fetch=\$\{kvmstrap-base\}\/filesystem\.squashfs/);
    expect(ipxe).toMatch(/^initrd \$\{kvmstrap-base\}\/initrd\.img$/m);
  });

  it("keeps /proc, /sys, /dev and /run as mount points in the squashfs, with kvmstrap and its node", async () => {
    const { stdout } = await execa(
      "unsquashfs",
      ["-l", "-d", "", path.join(NETBOOT, "filesystem.squashfs")],
      {
        maxBuffer: 512 * 1024 ** 2,
      },
    );
    const listing = new Set(stdout.split("\n"));
    for (const p of [
      "/proc",
      "/sys",
      "/dev",
      "/run",
      "/opt/kvmstrap/node/bin/node",
      "/usr/local/bin/kvmstrap",
    ]) {
      expect(listing.has(p), p).toBe(true);
    }
    expect(listing.has("/proc/cpuinfo")).toBe(false); // empty mount points, not the build host's
  });
});
