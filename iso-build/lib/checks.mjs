// Each output is checked here before it is published; a failed check names the file and what is wrong.
import { open } from "node:fs/promises";
import { run } from "./stage.mjs";

/** The El Torito catalogue has a BIOS and a UEFI image (or the platforms given), and the file has a partition table (USB). */
export async function checkIso(iso, platforms = ["BIOS", "UEFI"]) {
  const report = (await run("xorriso", ["-indev", iso, "-report_el_torito", "plain"])).stdout;
  const images = report.split("\n").filter((l) => l.startsWith("El Torito boot img :"));
  for (const platform of platforms) {
    if (!images.some((l) => l.split(/\s+/).includes(platform))) {
      throw new Error(`${iso}: no ${platform} El Torito boot image (xorriso reports: ${images.join("; ")})`);
    }
  }
  const table = (await run("sfdisk", ["-l", iso])).stdout;
  const label = /^Disklabel type: (\S+)/m.exec(table)?.[1];
  if (!label || !/EFI System/.test(table)) {
    throw new Error(
      `${iso}: no partition table with an EFI System partition (not bootable from USB):\n${table}`,
    );
  }
  return { elTorito: images.map((l) => l.replace(/^El Torito boot img :\s*/, "")), partitionTable: label };
}

/** Mount points and kvmstrap are in the squashfs (mksquashfs -e of /proc & co. made it unbootable). */
export async function checkSquashfs(file) {
  const listing = new Set(
    (await run("unsquashfs", ["-l", "-d", "", file], { maxBuffer: 512 * 1024 ** 2 })).stdout.split("\n"),
  );
  const need = ["/proc", "/sys", "/dev", "/run", "/tmp", "/opt/kvmstrap/node/bin/node"];
  need.push("/opt/kvmstrap/bin/kvmstrap.js", "/opt/kvmstrap/dist/cli/main.js", "/usr/local/bin/kvmstrap");
  const missing = need.filter((p) => !listing.has(p));
  if (missing.length) throw new Error(`${file}: missing ${missing.join(", ")}`);
  return listing.size;
}

/** The bundled node runs inside the root and kvmstrap answers --version there. */
export async function checkRuns(staging, expect) {
  const node = (await run("chroot", [staging, "/opt/kvmstrap/node/bin/node", "--version"])).stdout.trim();
  if (node !== `v${expect.node}`)
    throw new Error(`${staging}: bundled node says ${node}, expected v${expect.node}`);
  const own = (await run("chroot", [staging, "/usr/local/bin/kvmstrap", "--version"])).stdout.trim();
  if (!own.includes(expect.kvmstrap)) {
    throw new Error(`${staging}: kvmstrap --version says "${own}", expected ${expect.kvmstrap}`);
  }
  return { node, kvmstrap: own };
}

/** iPXE loads gzip initrds only (not bookworm's default zstd). */
export async function checkGzip(file) {
  const fd = await open(file, "r");
  try {
    const { buffer } = await fd.read(Buffer.alloc(2), 0, 2, 0);
    if (buffer[0] !== 0x1f || buffer[1] !== 0x8b) throw new Error(`${file}: not gzip (iPXE cannot load it)`);
  } finally {
    await fd.close();
  }
}
