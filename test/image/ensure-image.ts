// Builds the appliance at most once per set of inputs, for every tier that boots it (the image
// tier and the PXE chain): the shipped entry point (iso-build/build.mjs) runs when iso-build/out/
// lacks a build of the current inputs, and writes their key to out/.inputs when it succeeds. The
// inputs are what goes into the image: the built project (dist/, bin/), the image recipe and live
// overlays (iso-build/ minus out/), and the package manifests. So `.ci/run` builds once and both
// tiers reuse it, while an edit to any input rebuilds.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { IMAGE_OUT, isoPath } from "./image.js";

const INPUTS = ["dist", "bin", "iso-build", "units", "templates", "package.json", "package-lock.json"];
const SKIP = new Set([path.resolve("iso-build/out")]);

async function walk(p: string, hash: ReturnType<typeof createHash>): Promise<void> {
  const abs = path.resolve(p);
  if (SKIP.has(abs)) return;
  const st = await stat(abs).catch(() => null);
  if (!st) return;
  if (st.isDirectory()) {
    for (const name of (await readdir(abs)).sort()) await walk(path.join(p, name), hash);
    return;
  }
  if (!st.isFile()) return;
  hash.update(`${p}\0${st.size}\0`);
  hash.update(await readFile(abs));
}

/** A key over everything the image is made from. */
export async function imageInputsKey(): Promise<string> {
  const hash = createHash("sha256");
  for (const p of INPUTS) await walk(p, hash);
  return hash.digest("hex");
}

const STAMP = path.join(IMAGE_OUT, ".inputs");

/** Builds the image unless out/ already holds a build of these inputs. Returns whether it built. */
export async function ensureImage(log: (line: string) => void = console.log): Promise<boolean> {
  const key = await imageInputsKey();
  const stamped = await readFile(STAMP, "utf8").catch(() => "");
  if (stamped.trim() === key && existsSync(await isoPath())) {
    log(`[image] iso-build/out/ is a build of the current inputs (${key.slice(0, 12)}): reused`);
    return false;
  }
  const t = Date.now();
  await execa("node", ["iso-build/build.mjs"], { stdio: "inherit", env: { KVMSTRAP_IMAGE_OUT: IMAGE_OUT } });
  await writeFile(STAMP, `${key}\n`);
  log(`[image] build took ${((Date.now() - t) / 1000).toFixed(0)} s`);
  return true;
}
