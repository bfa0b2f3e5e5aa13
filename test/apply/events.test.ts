import { readFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { applyPlan } from "../../src/apply/engine.js";
import {
  type ApplyEvent,
  EventBus,
  fileLogSink,
  jsonLinesSink,
  redact,
  webhookSink,
} from "../../src/apply/events.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { planOf, tempDir, writeFileAction } from "./helpers.js";

const SECRET = "Bearer s3cr3t-do-not-log";
const runner = new ExecaRunner();
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

type Received = { headers: IncomingHttpHeaders; body: ApplyEvent };
async function server(status: (n: number) => number): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const s = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
    });
    req.on("end", () => {
      received.push({ headers: req.headers, body: JSON.parse(body) });
      res.statusCode = status(received.length);
      res.end("ok");
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}/hook`, received };
}

async function applyWith(bus: EventBus) {
  const root = await tempDir();
  const stateDir = await tempDir("kvmstrap-state-");
  const plan = planOf([
    writeFileAction("a", "/etc/a.conf", "a\n"),
    writeFileAction("b", "/etc/b.conf", "b\n"),
  ]);
  return applyPlan(plan, { target: new RootedTargetFs(root), runner, stateDir, bus });
}

describe("event sinks", () => {
  it("jsonLinesSink writes one parseable event per line, STARTED ... SUCCEEDED", async () => {
    const stream = new PassThrough();
    let text = "";
    stream.on("data", (c) => {
      text += c;
    });
    const bus = new EventBus();
    bus.subscribe(jsonLinesSink(stream));
    const r = await applyWith(bus);
    const lines = text.trimEnd().split("\n");
    const events = lines.map((l) => JSON.parse(l) as ApplyEvent);
    expect(events[0]).toMatchObject({ type: "run", phase: "STARTED", runId: r.runId });
    expect(events.at(-1)).toMatchObject({ type: "run", phase: "SUCCEEDED", counts: { done: 2 } });
    expect(
      events.filter((e) => e.type === "step").map((e) => e.type === "step" && `${e.id}:${e.phase}`),
    ).toEqual(["a:started", "a:finished", "b:started", "b:finished"]);
    expect(events.every((e) => !Number.isNaN(Date.parse(e.time)))).toBe(true);
  });

  it("webhookSink POSTs every event in order and never logs the secret header", async () => {
    const { url, received } = await server(() => 200);
    const logs: string[] = [];
    const bus = new EventBus();
    const all: ApplyEvent[] = [];
    bus.subscribe((e) => {
      all.push(e);
    });
    bus.subscribe(
      webhookSink(
        url,
        { "x-kvmstrap-node": "rack1-n1" },
        { authorization: SECRET },
        { verbose: true, log: (l) => logs.push(l) },
      ),
    );
    await applyWith(bus);
    await bus.drain(5000);
    expect(received.map((r) => r.body)).toEqual(all);
    expect(received[0]?.headers.authorization).toBe(SECRET);
    expect(received[0]?.headers["x-kvmstrap-node"]).toBe("rack1-n1");
    expect(received[0]?.headers["content-type"]).toBe("application/json");
    expect(logs.length).toBe(all.length);
    expect(logs.every((l) => !l.includes("s3cr3t"))).toBe(true);
    expect(logs[0]).toContain('"authorization":"[redacted]"');
  });

  it("a webhook answering 500 is retried a bounded number of times and never fails the apply", async () => {
    const { url, received } = await server(() => 500);
    const logs: string[] = [];
    const bus = new EventBus();
    bus.subscribe(
      webhookSink(url, {}, { authorization: SECRET }, { retries: 1, backoffMs: 5, log: (l) => logs.push(l) }),
    );
    const r = await applyWith(bus);
    expect(r.status).toBe("succeeded");
    await bus.drain(5000);
    expect(received.length).toBe(6 * 2); // 6 events, 2 attempts each
    expect(logs.length).toBe(12);
    expect(logs[0]).toMatch(/failed \(attempt 1\/2\): HTTP 500/);
    expect(logs.join("\n")).not.toContain("s3cr3t");
  });

  it("a webhook on a closed port or a hanging server never fails or stalls the apply", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const logs: string[] = [];
    const bus = new EventBus();
    bus.subscribe(
      webhookSink(
        `http://127.0.0.1:${port}/`,
        {},
        {},
        { retries: 1, backoffMs: 5, log: (l) => logs.push(l) },
      ),
    );
    const hanging = createServer(() => {}); // accepts, never answers
    servers.push(hanging);
    await new Promise<void>((r) => hanging.listen(0, "127.0.0.1", r));
    const hangUrl = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/`;
    bus.subscribe(webhookSink(hangUrl, {}, {}, { retries: 0, timeoutMs: 100, log: (l) => logs.push(l) }));
    const t0 = Date.now();
    const r = await applyWith(bus);
    expect(r.status).toBe("succeeded");
    expect(Date.now() - t0).toBeLessThan(1500); // the apply does not wait for deliveries
    await bus.drain(5000);
    expect(logs.some((l) => /ECONNREFUSED/.test(l))).toBe(true);
    expect(logs.some((l) => /timed out after 100 ms/.test(l))).toBe(true);
    hanging.closeAllConnections();
  });

  it("redact hides fields named like secrets; fileLogSink keeps redacted JSON lines on disk", async () => {
    expect(
      redact({ user: "ops", password: "x", nested: [{ apiToken: "y", ok: 1 }], secret_key: "z" }),
    ).toEqual({
      user: "ops",
      password: "[redacted]",
      nested: [{ apiToken: "[redacted]", ok: 1 }],
      secret_key: "[redacted]",
    });
    const dir = path.join(await tempDir(), "var/lib/kvmstrap/log");
    const bus = new EventBus();
    bus.subscribe(fileLogSink(dir));
    bus.emit({
      type: "step",
      phase: "failed",
      id: "x",
      summary: "s",
      time: "t",
      error: "boom",
      token: "t0k",
    } as ApplyEvent);
    await applyWith(bus);
    await bus.drain();
    const lines = (await readFile(path.join(dir, "apply-events.jsonl"), "utf8")).trimEnd().split("\n");
    expect(lines.length).toBe(7);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ id: "x", token: "[redacted]" });
    expect(JSON.parse(lines.at(-1) ?? "")).toMatchObject({ type: "run", phase: "SUCCEEDED" });
  });

  it("a JSON-lines reader that goes away (EPIPE) is reported once and never breaks the apply", async () => {
    const stream = new PassThrough();
    const problems: Error[] = [];
    const bus = new EventBus();
    bus.subscribe(jsonLinesSink(stream, (e) => problems.push(e)));
    stream.destroy(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
    expect((await applyWith(bus)).status).toBe("succeeded");
    expect(problems.map((e) => e.message)).toEqual(["write EPIPE"]);
  });

  it("a sink that throws does not break the apply", async () => {
    const errors: unknown[] = [];
    const bus = new EventBus((e) => errors.push(e));
    bus.subscribe(() => {
      throw new Error("sink broke");
    });
    bus.subscribe(async () => {
      throw new Error("async sink broke");
    });
    expect((await applyWith(bus)).status).toBe("succeeded");
    await bus.drain();
    expect(errors.length).toBe(12);
  });
});
