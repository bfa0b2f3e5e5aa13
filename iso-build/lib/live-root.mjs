// The cached live root: mmdebstrap of the recipe's Debian packages plus the pinned node, kept in
// CACHE/<rootKey>/root. It is built in CACHE/<rootKey>.tmp-PID and renamed into place only when
// complete, so an interrupted build never looks cached. Builds never modify a cached root.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { NODE_PIN, ROOT_RECIPE, rootKey } from "./recipe.mjs";
import { run, stage } from "./stage.mjs";

export const IMAGE_CACHE = process.env.KVMSTRAP_IMAGE_CACHE ?? "/var/cache/kvmstrap-image";

/** The Debian mirror apt on this host uses for the suite (sources.list or deb822), else Debian's. */
async function hostMirror(suite) {
  const texts = [await readFile("/etc/apt/sources.list", "utf8").catch(() => "")];
  for (const f of await readdir("/etc/apt/sources.list.d").catch(() => [])) {
    if (/\.(sources|list)$/.test(f)) texts.push(await readFile(`/etc/apt/sources.list.d/${f}`, "utf8"));
  }
  for (const text of texts) {
    const line = new RegExp(`^deb\\s+(?:\\[[^\\]]*\\]\\s+)?(\\S+)\\s+${suite}\\s`, "m").exec(text);
    if (line) return line[1];
    for (const stanza of text.split(/\n\s*\n/)) {
      const field = (k) => new RegExp(`^${k}:\\s*(.+)$`, "mi").exec(stanza)?.[1]?.trim().split(/\s+/);
      if (field("Types")?.includes("deb") && field("Suites")?.includes(suite) && field("URIs")) {
        return field("URIs")[0];
      }
    }
  }
  return "http://deb.debian.org/debian";
}

/** The node tarball from npm, kept in CACHE/node and accepted only with the pinned integrity. */
export async function ensureNodeTarball() {
  const dir = path.join(IMAGE_CACHE, "node");
  const file = path.join(dir, `${NODE_PIN.name}-${NODE_PIN.version}.tgz`);
  if (!existsSync(file)) {
    await mkdir(dir, { recursive: true });
    await run("npm", ["pack", `${NODE_PIN.name}@${NODE_PIN.version}`, "--pack-destination", dir, "--silent"]);
  }
  const [algo, expected] = NODE_PIN.integrity.split(/-(.*)/s);
  const actual = createHash(algo)
    .update(await readFile(file))
    .digest("base64");
  if (actual !== expected) {
    await rm(file, { force: true });
    throw new Error(`${file}: integrity ${algo}-${actual} is not the pinned ${NODE_PIN.integrity}`);
  }
  return file;
}

async function build(tmp) {
  const root = path.join(tmp, "root");
  const r = ROOT_RECIPE;
  const mirror = await hostMirror(r.suite);
  await stage(`mmdebstrap ${r.suite} from ${mirror} (about 4 minutes)`, () =>
    run("mmdebstrap", [
      `--variant=${r.variant}`,
      "--quiet",
      `--include=${r.packages.join(",")}`,
      ...r.dpkgExcludes.map((p) => `--dpkgopt=path-exclude=${p}`),
      ...r.dpkgIncludes.map((p) => `--dpkgopt=path-include=${p}`),
      `--setup-hook=mkdir -p "$1/etc/initramfs-tools/conf.d" && echo COMPRESS=${r.initramfsCompress} > "$1/etc/initramfs-tools/conf.d/kvmstrap-compress.conf"`,
      `--customize-hook=echo ${r.hostname} > "$1/etc/hostname"`,
      r.suite,
      root,
      mirror,
    ]),
  );
  const tarball = await stage("node (pinned, integrity checked)", ensureNodeTarball);
  const nodeDir = path.join(root, "opt/kvmstrap/node");
  await mkdir(nodeDir, { recursive: true });
  // Only the runtime: headers and docs are for addon builds, which never happen on the appliance.
  await run("tar", [
    "-xzf",
    tarball,
    "-C",
    nodeDir,
    "--strip-components=1",
    "package/bin/node",
    "package/LICENSE",
  ]);
  const boot = await readdir(path.join(root, "boot"));
  if (!boot.some((f) => f.startsWith("vmlinuz-")) || !boot.some((f) => f.startsWith("initrd.img-"))) {
    throw new Error(`no kernel or initrd in ${root}/boot: ${boot.join(" ")}`);
  }
}

/** The cached live root for the current recipe, built when missing. */
export async function ensureLiveRoot() {
  const key = rootKey();
  const dir = path.join(IMAGE_CACHE, key);
  const root = path.join(dir, "root");
  if (await stat(path.join(dir, "complete")).catch(() => null)) {
    console.log(`[image] live root: cached (${dir})`);
    return { root, key, cached: true };
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    await writeFile(path.join(tmp, "complete"), `${JSON.stringify({ ROOT_RECIPE, NODE_PIN })}\n`);
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return { root, key, cached: false };
}
