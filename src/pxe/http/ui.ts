// The web dashboard's files under /ui/: the page, its script and its style, built by
// scripts/bundle-web.mjs into dist/web at `npm run build` and shipped with the package (no CDN, no
// other origin). The page reads GET /v1/status and the SSE form of GET /v1/events, and sends re-arm
// with the admin token the operator types in; the server holds no session for it.
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import type { FastifyInstance, FastifyReply } from "fastify";

/** dist/web beside the installation: the same two levels up from src/pxe/http and dist/pxe/http. */
export const WEB_DIR = fileURLToPath(new URL("../../../dist/web/", import.meta.url));

/**
 * Only this origin's own files, no inline script, no framing: node-provided text (details, MACs,
 * names) is put in with textContent, and this stops anything that slipped through from running.
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HEADERS: Record<string, string> = {
  "content-security-policy": CSP,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  // Names are not content-hashed: the browser revalidates (ETag) and gets the new build after an upgrade.
  "cache-control": "no-cache",
};

export async function registerUi(app: FastifyInstance, dir = WEB_DIR): Promise<void> {
  if (!existsSync(path.join(dir, "index.html"))) {
    const missing = async (_req: unknown, reply: FastifyReply) =>
      reply
        .code(503)
        .header("content-type", "text/plain; charset=utf-8")
        .send(`the web dashboard is not built: ${dir} has no index.html (run npm run build)\n`);
    app.get("/ui", missing);
    app.get("/ui/*", missing);
    return;
  }
  // The page's links are relative (app.js, app.css): it must be read as the directory /ui/.
  app.get("/ui", async (_req, reply) => reply.redirect("/ui/", 301));
  await app.register(fastifyStatic, {
    root: dir,
    prefix: "/ui/",
    index: "index.html",
    list: false,
    serveDotFiles: false,
    decorateReply: false,
    cacheControl: false,
    setHeaders: (reply) => {
      for (const [k, v] of Object.entries(HEADERS)) reply.header(k, v);
    },
  });
}
