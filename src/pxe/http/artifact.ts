// Serving one netboot artifact: HEAD, a single byte range (206, Content-Range; 416 past the end),
// If-None-Match -> 304 and If-Range, streamed from disk in 1 MiB reads (never buffered whole), and
// through the rack's bandwidth cap when serve has one (--rack-bandwidth; only bodies pay for it).
// Written here rather than with @fastify/static because the validator must be the artifact's sha256
// from the manifest (the same bytes have the same ETag on every server and after every copy), and
// @fastify/send derives its ETag from size and mtime and answers conditional requests before any
// hook could replace it.
import { createReadStream } from "node:fs";
import { pipeline, type Transform } from "node:stream";
import type { FastifyReply, FastifyRequest } from "fastify";

export interface Artifact {
  path: string;
  size: number;
  /** The strong validator, without quotes (the manifest's sha256). */
  etag: string;
  type?: string;
}

export interface SendOutcome {
  /** Bytes of the body that went out (or were read for it, if the client went away). */
  bytes: number;
  /** The whole requested range was sent. */
  complete: boolean;
  status: number;
}

/** "bytes=A-B", "bytes=A-", "bytes=-N": one range, or undefined for a form served whole. */
export function parseRange(
  header: string,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return undefined; // several ranges or another unit: the whole file (RFC 9110 allows it)
  const [, a = "", b = ""] = m;
  if (a === "" && b === "") return undefined;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || start > end) return "unsatisfiable";
  return { start, end };
}

const matchesEtag = (header: string, etag: string) =>
  header
    .split(",")
    .map((s) => s.trim().replace(/^W\//, ""))
    .some((s) => s === "*" || s === `"${etag}"`);

export function sendArtifact(
  req: FastifyRequest,
  reply: FastifyReply,
  a: Artifact,
  done: (o: SendOutcome) => void = () => {},
  /** The rack's throttle (rack-bandwidth.ts), a fresh stream per body; undefined: no cap. */
  throttle?: () => Transform,
): FastifyReply {
  const quoted = `"${a.etag}"`;
  reply
    .header("accept-ranges", "bytes")
    .header("etag", quoted)
    .header("cache-control", "no-cache")
    .header("content-type", a.type ?? "application/octet-stream");
  const inm = req.headers["if-none-match"];
  if (inm && matchesEtag(inm, a.etag)) return reply.code(304).send();
  let start = 0;
  let end = a.size - 1;
  let status = 200;
  const rangeHeader = req.headers.range;
  const ifRange = req.headers["if-range"];
  if (rangeHeader && (!ifRange || String(ifRange).trim() === quoted)) {
    const r = parseRange(rangeHeader, a.size);
    if (r === "unsatisfiable") {
      return reply.code(416).header("content-range", `bytes */${a.size}`).send();
    }
    if (r) {
      ({ start, end } = r);
      status = 206;
      reply.header("content-range", `bytes ${start}-${end}/${a.size}`);
    }
  }
  const length = a.size === 0 ? 0 : end - start + 1;
  reply.code(status).header("content-length", String(length));
  if (req.method === "HEAD" || length === 0) {
    done({ bytes: 0, complete: true, status });
    return reply.send();
  }
  const stream = createReadStream(a.path, { start, end, highWaterMark: 1024 * 1024 });
  // pipeline, not pipe: a read error or a client gone destroys both, so neither waits on the bucket.
  const body = throttle ? pipeline(stream, throttle(), () => {}) : stream;
  reply.raw.once("close", () => {
    const complete = reply.raw.writableFinished;
    done({ bytes: complete ? length : Math.min(stream.bytesRead, length), complete, status });
    stream.destroy();
    if (body !== stream) body.destroy();
  });
  return reply.send(body);
}
