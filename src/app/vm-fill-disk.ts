// `kvmstrap vm fill-disk` as a use case: the image looked up as a deploy looks it up (the cache or a
// path), then written onto the store volume by src/vm/fill-disk.ts with the host's command runner.
import { ExecaRunner } from "../host/commands.js";
import { type FillResult, type FillTarget, fillDisk } from "../vm/fill-disk.js";
import { DEFAULT_CACHE_DIR } from "../vm/image-index.js";
import { resolveImage } from "../vm/overlay.js";

export async function vmFillDisk(o: {
  image: string;
  cacheDir?: string;
  target: FillTarget;
  secretFile?: string;
  createBytes?: number;
  log?: (line: string) => void;
}): Promise<FillResult> {
  const image = await resolveImage(o.image, o.cacheDir ?? DEFAULT_CACHE_DIR);
  return fillDisk(new ExecaRunner(), {
    image,
    target: o.target,
    ...(o.secretFile ? { secretFile: o.secretFile } : {}),
    ...(o.createBytes !== undefined ? { createBytes: o.createBytes } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
}
