// A local image server on 127.0.0.1 for the pull tests: serves a generated image with Range support,
// SHA256SUMS files (right and wrong), a 404, and can drop the connection part-way through a body.
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export type ImageServer = {
  base: string;
  image: Buffer;
  sha256: string;
  requests: { url: string; range?: string }[];
  /** Bytes after which the next full (non-Range) /img.qcow2 response is cut off; undefined = never. */
  dropAfter?: number;
  /** When true the server ignores Range headers (answers 200 with the whole file). */
  ignoreRange?: boolean;
  close(): Promise<void>;
};

export async function startImageServer(size = 20 * 1024 * 1024): Promise<ImageServer> {
  const image = randomBytes(size);
  const sha256 = createHash("sha256").update(image).digest("hex");
  const state: ImageServer = {
    base: "",
    image,
    sha256,
    requests: [],
    close: async () => {},
  };
  const sums = `${"0".repeat(64)}  other.img\n${sha256}  img.qcow2\n`;
  const badSums = `${createHash("sha256").update("not the image").digest("hex")}  img.qcow2\n`;
  const server: Server = createServer((req: IncomingMessage, res) => {
    state.requests.push({ url: req.url ?? "", range: req.headers.range });
    if (req.url === "/SHA256SUMS") return void res.end(sums);
    if (req.url === "/bad/SHA256SUMS") return void res.end(badSums);
    if (req.url !== "/img.qcow2" && req.url !== "/bad/img.qcow2") {
      res.statusCode = 404;
      return void res.end("not found");
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    let start = 0;
    if (m && !state.ignoreRange) {
      start = Number(m[1]);
      if (start >= size) {
        res.writeHead(416, { "content-range": `bytes */${size}` });
        return void res.end();
      }
      res.writeHead(206, {
        "content-range": `bytes ${start}-${size - 1}/${size}`,
        "content-length": size - start,
      });
    } else {
      res.writeHead(200, { "content-length": size, "accept-ranges": "bytes" });
    }
    const drop = start === 0 ? state.dropAfter : undefined;
    if (drop !== undefined) state.dropAfter = undefined; // only once
    let pos = start;
    const pump = () => {
      while (pos < size) {
        if (drop !== undefined && pos >= drop) {
          res.socket?.destroy();
          return;
        }
        const end = Math.min(size, pos + 64 * 1024, drop ?? size);
        const ok = res.write(image.subarray(pos, end));
        pos = end;
        if (!ok) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  state.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return state;
}

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
