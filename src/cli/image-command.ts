// `kvmstrap image pull|import|list|delete`: the image cache from the command line. Download failures
// (unreachable, HTTP errors, checksum mismatch) exit 1 with one line; bad input exits 2.
import { DEFAULT_CATALOGUE_DIR, findEntry, loadCatalogue } from "../vm/catalogue.js";
import {
  DEFAULT_CACHE_DIR,
  deleteImage,
  ImageError,
  importImage,
  listImages,
  type PullProgress,
  pullImage,
} from "../vm/images.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const IMAGE_HELP = `Usage: kvmstrap image <pull|import|list|delete> [options]

  pull NAME        Download catalogue image NAME into the cache and verify its checksum. The image
                   enters the cache only when verified; an interrupted download is resumed by the
                   next pull.
  import FILE      Copy a local qcow2 or raw disk image into the cache (needs --name); refused when
                   qemu-img cannot read it or finds it corrupt, and a raw file without a partition
                   table or filesystem. A cached name never changes content: a pull or import of
                   other bytes under it is refused (the same bytes again are a no-op).
  list             List the cached images: name, format, size, virtual size, checksum.
  delete NAME      Remove a cached image; refused while a VM uses it as its base (they are listed).

Options:
  --catalogue DIR  Image catalogue (default: the images/ shipped with kvmstrap)
  --cache DIR      Image cache (default ${DEFAULT_CACHE_DIR})
  --name N         import: the name to store FILE under
  --vm-dir DIR     delete: kvmstrap's VM records, checked for users of the base
                   (default /var/lib/kvmstrap/vms)
  --connect URI    libvirt URI where pull/import keep the cache as the dir pool "kvmstrap-images"
                   (default qemu:///system; skipped with a note when libvirtd is not reachable)
  --json           Print the result as JSON
  -h, --help       Print this help

Exit codes: 0 success, 1 download failed (unreachable, HTTP error, checksum mismatch),
2 usage or input error (unknown image, unreadable or corrupt file, a taken name, a base in use).
`;

const MB = 1e6;
const clock = (s: number) => {
  const t = Math.max(0, Math.round(s));
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
};

/** One progress line: "debian-12  45% [#########...........] 312.4/694.1 MB  12.3 MB/s  ETA 0:31". */
export function formatProgress(p: PullProgress, width = 20): string {
  const pct = p.total ? Math.min(100, Math.floor((p.received / p.total) * 100)) : undefined;
  const fill = pct === undefined ? 0 : Math.round((pct / 100) * width);
  const bar = `[${"#".repeat(fill)}${".".repeat(width - fill)}]`;
  const size = `${(p.received / MB).toFixed(1)}${p.total ? `/${(p.total / MB).toFixed(1)}` : ""} MB`;
  const rate = p.bytesPerSecond !== undefined ? `  ${(p.bytesPerSecond / MB).toFixed(1)} MB/s` : "";
  const eta = p.etaSeconds !== undefined ? `  ETA ${clock(p.etaSeconds)}` : "";
  return `${p.name} ${pct === undefined ? "  ?" : String(pct).padStart(3)}% ${bar} ${size}${rate}${eta}`;
}

/** A TTY gets one redrawn line; anything else one line per 10 %. */
export function progressPrinter(out: NodeJS.WriteStream | { write(s: string): unknown; isTTY?: boolean }) {
  let lastDecile = -1;
  let drawn = false;
  return (p: PullProgress) => {
    if (p.phase === "rehash") {
      out.write(
        `${p.name}: resuming, re-reading ${((p.total ?? 0) / MB).toFixed(1)} MB already downloaded\n`,
      );
    } else if (p.phase === "download") {
      if (out.isTTY) {
        out.write(`\r${formatProgress(p)}\x1b[K`);
        drawn = true;
      } else if (p.total) {
        const decile = Math.floor((p.received / p.total) * 10);
        if (decile > lastDecile) {
          lastDecile = decile;
          out.write(`${formatProgress(p)}\n`);
        }
      }
    } else if (p.phase === "verify") {
      if (drawn) out.write("\n");
      drawn = false;
      out.write(`${p.name}: verifying checksum\n`);
    }
  };
}

export const IMAGE_OPTIONS = {
  catalogue: { type: "string" },
  cache: { type: "string" },
  name: { type: "string" },
  "vm-dir": { type: "string" },
  connect: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function imageCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, IMAGE_OPTIONS);
  const [sub, arg, extra] = positionals;
  if (values.help || sub === "help") {
    process.stdout.write(IMAGE_HELP);
    return EXIT.ok;
  }
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const cacheDir = values.cache ?? DEFAULT_CACHE_DIR;
  const json = Boolean(values.json);
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  try {
    switch (sub) {
      case "pull": {
        if (!arg) throw new UsageError("image pull needs an image name (see the images/ catalogue)");
        const entry = findEntry(await loadCatalogue(values.catalogue ?? DEFAULT_CATALOGUE_DIR), arg);
        const r = await pullImage(entry, { cacheDir, onProgress: progressPrinter(process.stderr) });
        await registerPool(cacheDir, values.connect);
        if (json) print(r);
        else
          process.stdout.write(
            `${r.name}: ${r.cached ? "already cached" : "verified and cached"} at ${r.path}\n`,
          );
        return EXIT.ok;
      }
      case "import": {
        if (!arg) throw new UsageError("image import needs a FILE");
        if (!values.name) throw new UsageError("image import needs --name N");
        const r = await importImage(arg, values.name, { cacheDir });
        await registerPool(cacheDir, values.connect);
        if (json) print(r);
        else
          process.stdout.write(
            r.cached
              ? `${r.name}: already cached with the same content at ${r.path}\n`
              : `${r.name}: imported ${r.format} at ${r.path} (sha256 ${r.checksum.value})\n`,
          );
        return EXIT.ok;
      }
      case "delete": {
        if (!arg) throw new UsageError("image delete needs an image NAME");
        const libvirt = await reachableLibvirt(values.connect);
        const r = await deleteImage(arg, { cacheDir, vmDir: values["vm-dir"], libvirt });
        if (libvirt) await registerPool(cacheDir, values.connect);
        if (json) print(r);
        else process.stdout.write(`${r.name}: deleted ${r.path}\n`);
        return EXIT.ok;
      }
      case "list": {
        if (arg) throw new UsageError(`image list takes no arguments (got "${arg}")`);
        const images = await listImages(cacheDir);
        if (json) print(images);
        else process.stdout.write(renderList(images));
        return EXIT.ok;
      }
      default:
        throw new UsageError(
          sub
            ? `unknown image subcommand "${sub}"`
            : "image needs a subcommand: pull, import, list or delete",
        );
    }
  } catch (e) {
    if (!(e instanceof ImageError)) throw e;
    process.stderr.write(`kvmstrap: ${e.message}\n`);
    return EXIT.failed;
  }
}

function renderList(images: Awaited<ReturnType<typeof listImages>>): string {
  if (images.length === 0) return "no cached images\n";
  const gb = (n?: number) => (n === undefined ? "?" : `${(n / 2 ** 30).toFixed(2)} GiB`);
  const rows = [
    ["NAME", "FORMAT", "SIZE", "VIRTUAL", "CHECKSUM"],
    ...images.map((i) => [
      i.name,
      i.format,
      gb(i.size),
      gb(i.virtualSize),
      `${i.checksum.type}:${i.checksum.value.slice(0, 16)}`,
    ]),
  ];
  const w = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((v, c) => v.padEnd(w[c] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

/** Keeps the cache visible to libvirt as a dir pool; a daemon that is not running is only a note. */
async function registerPool(cacheDir: string, uri = "qemu:///system"): Promise<void> {
  const [{ libvirtAt }, { LibvirtError }, { ensureImagePool }] = await Promise.all([
    import("../app/adapters.js"),
    import("../vm/libvirt.js"),
    import("../vm/image-pool.js"),
  ]);
  // The image is cached either way: a libvirt that cannot take the pool is a note, not a failure.
  try {
    const r = await ensureImagePool(libvirtAt(uri), cacheDir);
    if (r.state === "unreachable") {
      process.stderr.write(
        `kvmstrap: note: libvirt (${uri}) not reachable, so the cache is not registered as pool ${r.pool} yet\n`,
      );
    }
  } catch (e) {
    if (!(e instanceof LibvirtError)) throw e;
    process.stderr.write(`kvmstrap: note: the cache was not registered as a libvirt pool: ${e.message}\n`);
  }
}

/**
 * The libvirt connection whose domains are checked for users of a base, or undefined (with a note)
 * when libvirtd cannot be reached: kvmstrap's own VM records are still checked.
 */
async function reachableLibvirt(uri = "qemu:///system") {
  const { libvirtAt } = await import("../app/adapters.js");
  const lv = libvirtAt(uri);
  try {
    await lv.version();
    return lv;
  } catch (e) {
    process.stderr.write(
      `kvmstrap: note: libvirt (${uri}) not reachable (${(e as Error).message}); only kvmstrap's VM records were checked for users of the image\n`,
    );
    return undefined;
  }
}
