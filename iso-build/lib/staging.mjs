// The one staging tree every output is cut from: the cached live root, hard-linked (so making it
// is fast and the cache is never written: files are only added, each new path unlinked first), plus
// the live-system files under iso-build/live/ and kvmstrap itself under /opt/kvmstrap.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, copyFile, cp, mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { IMAGE_CACHE } from "./live-root.mjs";
import { run } from "./stage.mjs";

const APP_FILES = ["bin", "dist", "templates", "images", "units", "package.json", "package-lock.json"];

/** Copies a file or tree to a path in the staging tree without writing through a hard link. */
async function place(from, to) {
  await rm(to, { recursive: true, force: true });
  await mkdir(path.dirname(to), { recursive: true });
  await cp(from, to, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
}

/** kvmstrap's production node_modules, installed once per package-lock.json (cached). */
async function productionModules(project) {
  const lock = await readFile(path.join(project, "package-lock.json"));
  const dir = path.join(
    IMAGE_CACHE,
    `modules-${createHash("sha256").update(lock).digest("hex").slice(0, 16)}`,
  );
  if (existsSync(path.join(dir, "node_modules"))) return path.join(dir, "node_modules");
  const tmp = `${dir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await copyFile(path.join(project, "package.json"), path.join(tmp, "package.json"));
  await copyFile(path.join(project, "package-lock.json"), path.join(tmp, "package-lock.json"));
  await run("npm", ["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], { cwd: tmp });
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  return path.join(dir, "node_modules");
}

async function overlay(from, staging, rel = "") {
  for (const entry of await readdir(path.join(from, rel), { withFileTypes: true })) {
    const r = path.join(rel, entry.name);
    if (entry.isDirectory()) await overlay(from, staging, r);
    else await place(path.join(from, r), path.join(staging, r));
  }
}

export async function makeStaging({ root, project, staging }) {
  if (!existsSync(path.join(project, "dist/cli/main.js"))) {
    throw new Error(`${project}/dist is missing: run "npm run build" first (npm run image does)`);
  }
  await rm(staging, { recursive: true, force: true });
  await run("cp", ["-al", root, staging]);
  await overlay(path.join(project, "iso-build/live"), staging);
  const app = path.join(staging, "opt/kvmstrap");
  for (const f of APP_FILES) await place(path.join(project, f), path.join(app, f));
  await place(await productionModules(project), path.join(app, "node_modules"));
  await chmod(path.join(app, "bin/kvmstrap.js"), 0o755);
  const kernels = (await readdir(path.join(staging, "boot"))).filter((f) => f.startsWith("vmlinuz-"));
  if (kernels.length !== 1)
    throw new Error(`expected one kernel in the live root, found: ${kernels.join(" ")}`);
  const kver = kernels[0].slice("vmlinuz-".length);
  const initrd = path.join(staging, "boot", `initrd.img-${kver}`);
  await stat(initrd);
  return { kernel: path.join(staging, "boot", kernels[0]), initrd, kernelVersion: kver };
}
