#!/usr/bin/env node
// Recaptures test/vm/fixtures/virsh/*.txt from a real libvirtd (root; see test/vm/capture-virsh.ts).
// test/vm/capture-virsh.ts is TypeScript outside the build, so esbuild bundles it into a temporary
// module under .cache/ (as build-guest-image.mjs does).
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
mkdirSync(path.join(root, ".cache"), { recursive: true });
const out = path.join(mkdtempSync(path.join(root, ".cache", "capture-virsh-")), "capture.mjs");
try {
  await build({
    entryPoints: [path.join(root, "test/vm/capture-virsh.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile: out,
    logLevel: "warning",
  });
  process.chdir(root);
  await import(pathToFileURL(out).href);
} finally {
  rmSync(path.dirname(out), { recursive: true, force: true });
}
