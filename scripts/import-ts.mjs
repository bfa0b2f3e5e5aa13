// Imports a TypeScript module that lives outside the build (a test helper a script runs by hand):
// esbuild (a dev dependency) bundles it into a temporary module under .cache/ (git-ignored; inside
// the repository so that the bundle's imports of execa and friends resolve to node_modules), which
// is removed once `use` is done with it.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

export const projectRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

export async function withTsModule(entry, use) {
  mkdirSync(path.join(projectRoot, ".cache"), { recursive: true });
  const name = path.basename(entry).replace(/\.ts$/, "");
  const out = path.join(mkdtempSync(path.join(projectRoot, ".cache", `${name}-`)), `${name}.mjs`);
  try {
    await build({
      entryPoints: [path.join(projectRoot, entry)],
      bundle: true,
      platform: "node",
      format: "esm",
      packages: "external",
      outfile: out,
      logLevel: "warning",
    });
    return await use(await import(pathToFileURL(out).href));
  } finally {
    rmSync(path.dirname(out), { recursive: true, force: true });
  }
}
