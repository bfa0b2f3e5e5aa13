// Bundles `kvmstrap tui` (src/tui/entry.ts: the TUI with Ink and React, and the use cases the
// command opens the machine and detects with) into dist/tui-bundle.mjs, one file to load. See entry.ts.
import { readFile } from "node:fs/promises";
import { build } from "esbuild";

/**
 * yoga-layout (Ink's layout engine, WebAssembly) loads its embedded wasm through fetch() when the
 * global exists, which makes node load and compile undici (its fetch) to decode a data: URL: about
 * a fifth of the bundle's load time, ~2 s of the TUI's start under TCG. Without fetch its loader
 * decodes the same bytes itself. The two checks are replaced; a yoga whose loader changed fails
 * the build instead of silently losing this.
 */
const yogaWithoutFetch = {
  name: "yoga-without-fetch",
  setup(b) {
    b.onLoad({ filter: /yoga-layout[\\/]dist[\\/]binaries[\\/]yoga-wasm-base64-esm\.js$/ }, async (args) => {
      const text = await readFile(args.path, "utf8");
      const check = '"function"!=typeof fetch';
      const count = text.split(check).length - 1;
      if (count !== 2)
        throw new Error(`${args.path}: expected 2 fetch checks in yoga's loader, found ${count}`);
      return { contents: text.replaceAll(check, "true"), loader: "js" };
    });
  },
};

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
  plugins: [yogaWithoutFetch],
  // Some of Ink's dependencies are CommonJS and call require().
  banner: {
    js: "import { createRequire as __kvmstrapRequire } from 'node:module'; const require = __kvmstrapRequire(import.meta.url);",
  },
  // Ink imports its React DevTools bridge statically but uses it only with DEV=true.
  alias: { "react-devtools-core": "./scripts/devtools-stub.mjs" },
  define: { "process.env.NODE_ENV": '"production"' },
  // Detection runs its commands through execa, imported on first use (after the first paint): an
  // ordinary import keeps execa's modules out of the file parsed before that paint.
  external: ["execa"],
});
