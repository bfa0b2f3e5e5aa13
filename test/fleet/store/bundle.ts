// A test's TypeScript entry bundled into one module node can run as a child process, with the
// drivers (pglite's WASM, pg) left to node_modules: under node_modules/.cache so they resolve.
import { mkdirSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

const root = path.resolve(import.meta.dirname, "../../..");

export async function bundle(entry: string, name: string): Promise<string> {
  const dir = path.join(root, "node_modules/.cache/kvmstrap-fleet");
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, `${name}-${process.pid}.mjs`);
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external: ["@electric-sql/pglite", "pg"],
    logLevel: "error",
  });
  return outfile;
}
