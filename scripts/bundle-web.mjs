// Bundles serve's web dashboard (src/pxe/web) into dist/web: index.html, app.js (one IIFE, every
// import inlined: no CDN, no other origin) and app.css, which `kvmstrap serve` answers under /ui/.
// Each file is written beside its target and renamed over it, so a server running from this tree
// never reads half a file. Also run by the dashboard's tests, the same build as `npm run build`.
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const src = path.join(root, "src/pxe/web");
const out = process.argv[2] ? path.resolve(process.argv[2]) : path.join(root, "dist/web");

const tmpName = (file) => `${file}.tmp-${process.pid}-${randomBytes(3).toString("hex")}`;
const place = (file, write) => {
  const tmp = tmpName(file);
  write(tmp);
  renameSync(tmp, file);
};

const common = { bundle: true, minify: true, legalComments: "none", logLevel: "error", write: false };
const [js, css] = await Promise.all([
  build({
    ...common,
    entryPoints: [path.join(src, "main.ts")],
    outfile: "app.js",
    format: "iife",
    platform: "browser",
    // Browsers of the last few years (EventSource, <dialog>, CSS.escape); no polyfills.
    target: ["chrome110", "firefox110", "safari16"],
  }),
  build({ ...common, entryPoints: [path.join(src, "style.css")], outfile: "app.css", target: ["chrome110"] }),
]);
mkdirSync(out, { recursive: true });
for (const r of [js, css])
  for (const f of r.outputFiles)
    place(path.join(out, path.basename(f.path)), (t) => writeFileSync(t, f.contents));
place(path.join(out, "index.html"), (t) => copyFileSync(path.join(src, "index.html"), t));
