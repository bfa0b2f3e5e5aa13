// pci.ids lookups remembered for the boot in /run/kvmstrap/pci-names.json: the 1.3 MB database costs
// ~8 ms of a cold `kvmstrap detect` to read and search, for the same few dozen names every run.
// The cache is keyed by the database's size and mtime, so an updated pci.ids is read afresh. Names
// are a presentation aid, so any cache problem falls back to the database, silently.
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { DEFAULT_PCI_IDS_PATHS, loadPciIds, type PciIds } from "./pci-ids.js";

export const PCI_NAMES_CACHE = "/run/kvmstrap/pci-names.json";

type CacheFile = { key: string; names: Record<string, string | null> };

async function databaseKey(paths: string[]): Promise<string | null> {
  for (const p of paths) {
    try {
      const st = await stat(p);
      return `${p}:${st.size}:${st.mtimeMs}`;
    } catch {
      /* next */
    }
  }
  return null;
}

/** Names for the lookups `need` asks for: from the cache when it has them all, else the database. */
export async function cachedPciIds(
  need: (ids: PciIds) => void,
  options: { cacheFile?: string; paths?: string[] } = {},
): Promise<PciIds | null> {
  const cacheFile = options.cacheFile ?? PCI_NAMES_CACHE;
  const paths = options.paths ?? DEFAULT_PCI_IDS_PATHS;
  const key = await databaseKey(paths);
  if (key === null) return null;
  const cached = await readFile(cacheFile, "utf8")
    .then((t) => JSON.parse(t) as CacheFile)
    .catch(() => null);
  const names = cached?.key === key ? cached.names : {};
  let missed = false;
  const fromCache: PciIds = {
    vendor: (v) => look(`v:${v}`),
    device: (v, d) => look(`d:${v}:${d}`),
    className: (c) => look(`c:${c}`),
  };
  function look(k: string): string | null {
    if (k in names) return names[k] ?? null;
    missed = true;
    return null;
  }
  need(fromCache);
  if (!missed) return fromCache;

  const ids = await loadPciIds(paths);
  if (!ids) return null;
  const recorded: PciIds = {
    vendor: (v) => (names[`v:${v}`] = ids.vendor(v)),
    device: (v, d) => (names[`d:${v}:${d}`] = ids.device(v, d)),
    className: (c) => (names[`c:${c}`] = ids.className(c)),
  };
  need(recorded);
  await save(cacheFile, { key, names });
  return recorded;
}

async function save(file: string, data: CacheFile): Promise<void> {
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(data));
    await rename(tmp, file);
  } catch {
    /* not root, read-only /run: the next run reads the database again */
  }
}
