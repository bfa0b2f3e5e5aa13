// Builds the image once for the whole tier with the shipped entry point (iso-build/build.mjs; the
// live root comes from its cache when its inputs are unchanged). KVMSTRAP_IMAGE_REUSE=1 skips the
// build when iso-build/out/ already has the outputs (for iterating on the boot tests only).
import { existsSync } from "node:fs";
import { execa } from "execa";
import { IMAGE_OUT, isoPath } from "./image.js";

export default async function setup(): Promise<void> {
  if (process.env.KVMSTRAP_IMAGE_REUSE === "1" && existsSync(await isoPath())) return;
  const t = Date.now();
  await execa("node", ["iso-build/build.mjs"], { stdio: "inherit", env: { KVMSTRAP_IMAGE_OUT: IMAGE_OUT } });
  console.log(`[test:image] build took ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
