// Builds the image once for the whole tier with the shipped entry point (iso-build/build.mjs; the
// live root comes from its cache when its inputs are unchanged), unless iso-build/out/ already holds
// a build of the current inputs (ensure-image.ts): the PXE chain tier shares the same build.
import { ensureImage } from "./ensure-image.js";

export default async function setup(): Promise<void> {
  await ensureImage();
}
