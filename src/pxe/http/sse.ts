// The event stream as Server-Sent Events, for the web dashboard (EventSource): the same events as the
// JSON-lines form of GET /v1/events, one `data:` line each. Every connection opens with a `hello`,
// which tells a client that (re)connected to reload GET /v1/status: events carry no ids and the table
// keeps no backlog, so a reconnect resumes from a fresh snapshot instead of Last-Event-ID.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { NodeTable, ServeEvent } from "../node-table.js";

/** A client that asks for text/event-stream (EventSource always does). */
export function wantsEventStream(req: FastifyRequest): boolean {
  return /\btext\/event-stream\b/i.test(req.headers.accept ?? "");
}

/** Bytes queued for one slow client before it is cut off (it reconnects and reloads the status). */
export const SSE_MAX_QUEUED = 4 * 1024 * 1024;
/** A comment line this often keeps proxies from closing an idle stream and finds dead clients. */
const KEEPALIVE_MS = 15_000;
/** How long the browser waits before reconnecting after the server went away. */
const RETRY_MS = 2_000;

export function openEventStream(reply: FastifyReply, table: NodeTable, streams: Set<FastifyReply>): void {
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-accel-buffering": "no",
  });
  // Events come in bursts (a thousand nodes, a sweep that stalls many): one write per tick, not per event.
  let queued = "";
  let flushing = false;
  const flush = () => {
    flushing = false;
    if (res.destroyed || !queued) return;
    res.write(queued);
    queued = "";
    if (res.writableLength > SSE_MAX_QUEUED) res.destroy();
  };
  const send = (chunk: string) => {
    queued += chunk;
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
  };
  const hello = { type: "hello", time: new Date().toISOString(), nodes: table.size };
  send(`retry: ${RETRY_MS}\nevent: hello\ndata: ${JSON.stringify(hello)}\n\n`);
  const off = table.subscribe((e: ServeEvent) => send(`data: ${JSON.stringify(e)}\n\n`));
  const keepalive = setInterval(() => send(": keepalive\n\n"), KEEPALIVE_MS);
  streams.add(reply);
  res.once("close", () => {
    off();
    clearInterval(keepalive);
    streams.delete(reply);
  });
  reply.hijack();
}
