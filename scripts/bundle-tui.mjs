// Bundles the TUI (src/tui/entry.ts with Ink and React) into dist/tui-bundle.mjs. See entry.ts.
import { build } from "esbuild";

await build({
  entryPoints: ["src/tui/entry.ts"],
  outfile: "dist/tui-bundle.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  minify: true,
  legalComments: "none",
  logLevel: "error",
  // Some of Ink's dependencies are CommonJS and call require().
  banner: {
    js: "import { createRequire as __kvmstrapRequire } from 'node:module'; const require = __kvmstrapRequire(import.meta.url);",
  },
  // Ink imports its React DevTools bridge statically but uses it only with DEV=true.
  alias: { "react-devtools-core": "./scripts/devtools-stub.mjs" },
  define: { "process.env.NODE_ENV": '"production"' },
  // Engine dependencies the TUI reaches at run time stay ordinary imports.
  external: ["execa", "tar-stream"],
});
