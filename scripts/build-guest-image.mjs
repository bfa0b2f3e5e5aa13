#!/usr/bin/env node
// Builds (or finds cached) the e2e tier's Debian guest image: `npm run guest-image`. CI runs it ahead
// of `npm run test:e2e`. test/e2e/guest-image.ts is TypeScript outside the build, so esbuild (a dev
// dependency) bundles it into a temporary module under .cache/ (git-ignored; inside the repository so
// that the bundle's imports of execa resolve to node_modules).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
mkdirSync(path.join(root, ".cache"), { recursive: true });
const out = path.join(mkdtempSync(path.join(root, ".cache", "guest-image-")), "guest-image.mjs");
try {
  await build({
    entryPoints: [path.join(root, "test/e2e/guest-image.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile: out,
    logLevel: "warning",
  });
  const { ensureGuestImage } = await import(pathToFileURL(out).href);
  console.log(JSON.stringify(await ensureGuestImage(), null, 2));
} finally {
  rmSync(path.dirname(out), { recursive: true, force: true });
}
