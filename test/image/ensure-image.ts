// Every tier that boots the appliance (the image tier, the PXE chain) gets it from here: the shipped
// entry point with --if-changed (iso-build/lib/inputs.mjs), which builds only when iso-build/out/
// lacks a build of the current inputs, so one CI run builds once and both tiers share it.
import { execa } from "execa";
import { IMAGE_OUT } from "./image.js";

/** Builds the image unless out/ already holds a build of these inputs. */
export async function ensureImage(): Promise<void> {
  const t = Date.now();
  await execa("node", ["iso-build/build.mjs", "--if-changed"], {
    stdio: "inherit",
    env: { KVMSTRAP_IMAGE_OUT: IMAGE_OUT },
  });
  console.log(`[image] ready after ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
