// A VM's disk: a qcow2 overlay on a base image (never a copy), and the checks around it: the base
// resolves (a cached image's name or a path) and qemu-img reads it in the format it claims; an
// overlay is "in place" when qemu-img reports the planned backing file and size. The overlay is
// created beside its final name and renamed, so a kill at any instant leaves no half overlay, only
// a temporary file the next run sweeps.
import { constants } from "node:fs";
import { access, rename, unlink } from "node:fs/promises";
import path from "node:path";
import { TMP_MARK } from "../core/atomic-write.js";
import type { CommandRunner } from "../host/commands.js";
import { DEFAULT_CACHE_DIR, listImages } from "./images.js";
import { DeployError } from "./vm-state.js";

export const GiB = 2 ** 30;

export type ImageInfo = { path: string; format: "qcow2" | "raw"; virtualSize: number };

export const isNoSpace = (e: unknown) => {
  const err = e as NodeJS.ErrnoException & { stderr?: string };
  return err.code === "ENOSPC" || /No space left on device/i.test(`${err.message}\n${err.stderr ?? ""}`);
};

export function noSpace(where: string, e: unknown): DeployError {
  return new DeployError(
    "no-space",
    `no space left on the device holding ${where}`,
    "free space there or pass another VM directory",
    { cause: e },
  );
}

/** Where an image (a path, or a cached image's name) lives and its format, without reading it. */
export async function resolveImage(
  image: string,
  cacheDir: string = DEFAULT_CACHE_DIR,
): Promise<{ path: string; format: "qcow2" | "raw" }> {
  if (image.includes("/")) {
    const file = path.resolve(image);
    return { path: file, format: /\.(raw|img)$/i.test(file) ? "raw" : "qcow2" };
  }
  const cached = (await listImages(cacheDir)).find((i) => i.name === image);
  if (!cached) {
    throw new DeployError(
      "unknown-image",
      `unknown image "${image}": not a path and not in the image cache ${cacheDir}`,
      "kvmstrap image list shows the cache; kvmstrap image pull|import adds to it",
    );
  }
  return { path: cached.path, format: cached.format };
}

/** Resolves the image and proves qemu-img can read it in the format it claims. */
export async function checkImage(
  image: string,
  runner: CommandRunner,
  cacheDir: string = DEFAULT_CACHE_DIR,
): Promise<ImageInfo> {
  const { path: file, format } = await resolveImage(image, cacheDir);
  try {
    await access(file, constants.R_OK);
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
    throw new DeployError(
      "unknown-image",
      missing ? `image ${file} does not exist` : `image ${file} is not readable: ${(e as Error).message}`,
      "kvmstrap image list shows the cached images",
    );
  }
  if (!(await runner.which("qemu-img"))) {
    throw new DeployError("failed", "qemu-img is not installed (Debian package qemu-utils)");
  }
  const r = await runner.run("qemu-img", ["info", "-f", format, "--output=json", file], {
    timeoutMs: 30_000,
  });
  const why = () =>
    r.stderr
      .trim()
      .split("\n")[0]
      ?.replace(/^qemu-img: /, "") || `exit ${r.exitCode}`;
  if (r.exitCode !== 0) {
    throw new DeployError(
      "corrupt-image",
      `image ${file} is corrupt or not a ${format} image: ${why()}`,
      "re-pull or re-import the image",
    );
  }
  if (format === "qcow2") {
    const c = await runner.run("qemu-img", ["check", "-f", "qcow2", file], { timeoutMs: 120_000 });
    // 0: clean; 3: leaked clusters only (harmless); anything else: corruption or a read error.
    if (c.exitCode !== 0 && c.exitCode !== 3) {
      throw new DeployError(
        "corrupt-image",
        `image ${file} is corrupt: qemu-img check: ${c.stderr.trim().split("\n")[0] || c.stdout.trim().split("\n").at(-1)}`,
        "re-pull or re-import the image",
      );
    }
  }
  const info = JSON.parse(r.stdout) as { "virtual-size"?: number };
  return { path: file, format, virtualSize: info["virtual-size"] ?? 0 };
}

/** What qemu-img says of an existing overlay (-U: it may be in use by a running VM), or null. */
export async function overlayInfo(
  runner: CommandRunner,
  file: string,
): Promise<{ backing: string | null; virtualSize: number; format: string } | null> {
  const r = await runner.run("qemu-img", ["info", "-U", "--output=json", file], { timeoutMs: 30_000 });
  if (r.exitCode !== 0) return null;
  const info = JSON.parse(r.stdout) as {
    format?: string;
    "virtual-size"?: number;
    "full-backing-filename"?: string;
    "backing-filename"?: string;
  };
  return {
    format: info.format ?? "",
    virtualSize: info["virtual-size"] ?? 0,
    backing: info["full-backing-filename"] ?? info["backing-filename"] ?? null,
  };
}

/** The overlay: qcow2 on the base, sizeBytes big; written beside (TMP_MARK + pid) and renamed. */
export async function createOverlay(runner: CommandRunner, base: ImageInfo, file: string, sizeBytes: number) {
  if (sizeBytes < base.virtualSize) {
    throw new DeployError(
      "invalid",
      `disk ${(sizeBytes / GiB).toFixed(2)} GiB is smaller than the image (${(base.virtualSize / GiB).toFixed(2)} GiB)`,
    );
  }
  const tmp = `${file}${TMP_MARK}${process.pid}`;
  const r = await runner.run(
    "qemu-img",
    ["create", "-q", "-f", "qcow2", "-F", base.format, "-b", base.path, tmp, String(sizeBytes)],
    { timeoutMs: 60_000 },
  );
  if (r.exitCode !== 0) {
    await unlink(tmp).catch(() => {});
    const err = Object.assign(new Error(`qemu-img create: ${r.stderr.trim() || `exit ${r.exitCode}`}`), {
      stderr: r.stderr,
    });
    if (isNoSpace(err)) throw noSpace(file, err);
    throw new DeployError("failed", err.message);
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
