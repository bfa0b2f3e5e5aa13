// The image cache's metadata: CACHE/index.json, rewritten atomically (temporary file + fsync +
// rename), so a crash leaves the old or the new index, never half of one. Writers in one process are
// serialised; two kvmstrap processes pulling into one cache at once are not (last writer wins).
import { readFileSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic-write.js";
import type { DigestType } from "./checksums.js";

/**
 * Where images live by default. A libvirt dir pool (e.g. "kvmstrap-images") can be defined over this
 * directory later so volumes are visible to libvirt; nothing here needs libvirt.
 */
export const DEFAULT_CACHE_DIR = "/var/lib/kvmstrap/images";

export type CachedImage = {
  name: string;
  /** File name inside the cache directory. */
  file: string;
  format: "qcow2" | "raw";
  size: number;
  virtualSize?: number;
  checksum: { type: DigestType; value: string };
  /** The URL it was pulled from, or the path it was imported from. */
  source: string;
  osinfo?: string;
  added: string;
};

type IndexFile = { version: 1; images: Record<string, CachedImage> };

const indexPath = (cacheDir: string) => path.join(cacheDir, "index.json");

export async function readIndex(cacheDir: string): Promise<Record<string, CachedImage>> {
  let text: string;
  try {
    text = await readFile(indexPath(cacheDir), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw e;
  }
  const parsed = JSON.parse(text) as Partial<IndexFile>;
  return parsed.images ?? {};
}

/**
 * The index read synchronously, for the planner and the answer's checks (both synchronous): empty
 * when there is no cache or its index cannot be read, so an image in it counts as unknown.
 */
export function readIndexSync(cacheDir: string): Record<string, CachedImage> {
  try {
    return (JSON.parse(readFileSync(indexPath(cacheDir), "utf8")) as Partial<IndexFile>).images ?? {};
  } catch {
    return {};
  }
}

let chain: Promise<unknown> = Promise.resolve();

/** Read-modify-write of the index, serialised within this process. */
export function updateIndex(
  cacheDir: string,
  change: (images: Record<string, CachedImage>) => void,
): Promise<Record<string, CachedImage>> {
  const next = chain.then(async () => {
    await mkdir(cacheDir, { recursive: true });
    const images = await readIndex(cacheDir);
    change(images);
    const body: IndexFile = { version: 1, images };
    await writeFileAtomic(indexPath(cacheDir), `${JSON.stringify(body, null, 2)}\n`);
    return images;
  });
  chain = next.catch(() => {});
  return next;
}
