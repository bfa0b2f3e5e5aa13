// The test helpers a bench runs (the private libvirtd, guests, the cluster rig) are TypeScript outside
// the build: bundled by esbuild into a bench's own directory and imported from there.
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

/** Bundles `entries` (paths under root) into dir; returns an import of one of them by file name. */
export async function bundleTestModules(root, entries, dir) {
  await build({
    entryPoints: entries.map((e) => path.join(root, e)),
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outdir: dir,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  return (file) => import(pathToFileURL(path.join(dir, file)).href);
}
