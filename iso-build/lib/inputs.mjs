// What the image is made from, as one key: the built project (dist/, bin/), the image recipe and live
// overlays (iso-build/ minus out/), the first-boot units and the package manifests. `build.mjs
// --if-changed` skips the build when out/.inputs holds the key of the current inputs, so one CI run
// builds once and the PXE chain and image tiers share it, while an edit to any input rebuilds.
import { createHash } from "node:crypto";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";

const INPUTS = ["dist", "bin", "iso-build", "units", "templates", "package.json", "package-lock.json"];

async function walk(project, rel, skip, hash) {
  const abs = path.join(project, rel);
  if (skip.has(abs)) return;
  const st = await stat(abs).catch(() => null);
  if (!st) return;
  if (st.isDirectory()) {
    for (const name of (await readdir(abs)).sort()) await walk(project, path.join(rel, name), skip, hash);
    return;
  }
  if (!st.isFile()) return;
  hash.update(`${rel}\0${st.size}\0`);
  hash.update(await readFile(abs));
}

/** The key of the image's inputs under project; out (the output directory) is not an input. */
export async function inputsKey(project, out) {
  const hash = createHash("sha256");
  const skip = new Set([path.resolve(out), path.join(project, "iso-build", "out")]);
  for (const rel of INPUTS) await walk(project, rel, skip, hash);
  return hash.digest("hex");
}

export const STAMP = ".inputs";
