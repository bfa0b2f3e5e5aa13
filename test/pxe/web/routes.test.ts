// The dashboard's routes on the shipped BootServer (loopback), asked by the real curl and a raw TCP
// client: the SSE form of GET /v1/events beside its JSON-lines form, a client that stops reading is
// cut off instead of buffered without bound, and /ui/ before the page is built says so.
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import Fastify from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SSE_MAX_QUEUED } from "../../../src/pxe/http/sse.js";
import { registerUi } from "../../../src/pxe/http/ui.js";
import { bootScript, macOf, type Rig, startRig } from "./rig.js";

let rig: Rig;
beforeAll(async () => {
  rig = await startRig({ tag: "routes", named: 2 });
});
afterAll(async () => {
  await rig?.close();
});

/** curl -N on the stream until `until` shows up in what it printed (or 10 s pass). */
async function follow(args: string[], until: RegExp, during: () => Promise<unknown>): Promise<string> {
  const child = execa("curl", ["-sS", "-N", "-D", "-", ...args, `${rig.base}/v1/events`], {
    reject: false,
    timeout: 10_000,
  });
  let out = "";
  let started = false;
  await new Promise<void>((resolve) => {
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
      if (!started && /hello/.test(out)) {
        started = true;
        void during();
      }
      if (until.test(out)) resolve();
    });
    void child.then(() => resolve());
  });
  child.kill();
  await child;
  return out;
}

describe("the event stream", () => {
  it("answers EventSource's Accept with Server-Sent Events: retry, a hello, then one data line per event", async () => {
    const mac = macOf(0);
    const out = await follow(
      ["-H", "Accept: text/event-stream"],
      new RegExp(`"mac":"${mac}"[^\\n]*\\n\\n`),
      () => bootScript(rig.base, mac),
    );
    expect(out).toMatch(/^HTTP\/1\.1 200/);
    expect(out).toMatch(/content-type: text\/event-stream/i);
    expect(out).toMatch(/cache-control: no-store/i);
    const body = out.slice(out.indexOf("\r\n\r\n") + 4);
    expect(body).toMatch(/^retry: \d+\nevent: hello\ndata: \{"type":"hello",[^\n]*\n\n/);
    const data = body
      .split("\n\n")
      .filter((b) => b.startsWith("data: "))
      .map((b) => JSON.parse(b.slice(6)));
    expect(data).toContainEqual(
      expect.objectContaining({
        type: "node-state",
        mac,
        from: "discovered",
        state: "script",
        input: "script",
      }),
    );
  });

  it("still answers JSON lines to everyone else (serve status --follow)", async () => {
    const mac = macOf(1);
    const out = await follow([], new RegExp(`"mac":"${mac}"[^\\n]*\\n`), () => bootScript(rig.base, mac));
    expect(out).toMatch(/content-type: application\/x-ndjson/i);
    const lines = out
      .slice(out.indexOf("\r\n\r\n") + 4)
      .trim()
      .split("\n");
    expect(JSON.parse(lines[0] as string)).toMatchObject({ type: "hello" });
    expect(lines.map((l) => JSON.parse(l))).toContainEqual(expect.objectContaining({ mac, state: "script" }));
  });

  it("cuts off a client that stops reading once its queue passes the bound, instead of buffering everything", async () => {
    const { port } = new URL(rig.base);
    const socket = net.connect(Number(port), "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write("GET /v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
    socket.pause(); // reads nothing from here on
    await new Promise((r) => setTimeout(r, 200));
    const chunk = "x".repeat(256 * 1024);
    let published = 0;
    for (let i = 0; i < 200; i++) {
      rig.server.table.publish({ type: "warning", time: new Date().toISOString(), message: chunk });
      published += chunk.length;
      await new Promise((r) => setImmediate(r));
    }
    let received = 0;
    socket.on("data", (d: Buffer) => {
      received += d.length;
    });
    const ended = await new Promise<boolean>((resolve) => {
      socket.once("close", () => resolve(true));
      setTimeout(() => resolve(false), 10_000);
      socket.resume();
    });
    socket.destroy();
    expect(ended).toBe(true);
    expect(published).toBeGreaterThan(4 * SSE_MAX_QUEUED);
    expect(received).toBeLessThan(published / 2);
  });
});

describe("/ui/", () => {
  it("says the page is not built, with the directory, when dist/web has no index.html", async () => {
    const empty = mkdtempSync(path.join(os.tmpdir(), `kvms-web-empty-${process.pid}-`));
    const app = Fastify();
    try {
      await registerUi(app, empty);
      const r = await app.inject({ method: "GET", url: "/ui/" });
      expect(r.statusCode).toBe(503);
      expect(r.body).toBe(`the web dashboard is not built: ${empty} has no index.html (run npm run build)\n`);
    } finally {
      await app.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
