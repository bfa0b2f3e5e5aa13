// A discovered node whose approval is overtaken before it fetches its answer: the poll got 200, then
// the operator started a rollout, and the fetch gets 409 "waiting for its wave" (seen in CI's rack run:
// the agent took it as a failure and the canary node never installed). The agent goes back to waiting
// and fetches the answer once it is served. The boot server here is a loopback HTTP server that plays
// the answer route's statuses in the order real serve gave them.
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runAgent } from "../../src/app/node-agent.js";
import { CMDLINE, DISCOVER_MODE, NODE_PATHS } from "../../src/app/node-protocol.js";

const MAC = "52:54:00:12:34:57";
const TOKEN = "tok-SECRET-overtaken";
const ANSWER = "version: 1\n# this node's answer\n";
let server: Server;
let base = "";
let scratch = "";
/** The answer route's replies in order; the last one repeats. */
let plays: { status: number; body: string }[] = [];
const gets: number[] = [];

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "kvms-overtaken-"));
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      if (req.method === "GET" && req.url === NODE_PATHS.answer(MAC)) {
        const play = plays.length > 1 ? (plays.shift() as (typeof plays)[number]) : plays[0];
        gets.push(play?.status ?? 0);
        res.statusCode = play?.status ?? 500;
        res.end(play?.body ?? "");
        return;
      }
      res.statusCode = req.method === "POST" ? 204 : 404;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(scratch, { recursive: true, force: true });
});

const agent = (lines: string[]) =>
  runAgent({
    cmdline: [
      `${CMDLINE.server}=${base}`,
      `${CMDLINE.node}=${MAC}`,
      `${CMDLINE.token}=${TOKEN}`,
      `${CMDLINE.answer}=${base}${NODE_PATHS.answer(MAC)}`,
      `${CMDLINE.mode}=${DISCOVER_MODE}`,
    ].join(" "),
    say: (l) => lines.push(l),
    log: (l) => lines.push(l),
    installer: {
      unavailable: async () => "no installer in this test",
      run: async () => ({ ok: false, detail: "" }),
    },
    power: { sync: [], reboot: [], poweroff: [] },
    answerFile: path.join(scratch, "answer.yaml"),
    find: { http: { attempts: 1 } },
    discover: {
      pollMs: 50,
      maxPollMs: 100,
      timeoutMs: 10_000,
      take: async () => ({
        identity: { uuid: null, serial: null, assetTag: null, macs: [MAC] },
        report: {} as never,
      }),
    },
  });

describe("a discovered node's answer, not served after all", () => {
  it("goes back to waiting on 409 'waiting for its wave' and fetches the answer once it is served", async () => {
    const wave = JSON.stringify({ error: "approved; waiting for its wave in rollout r1 (running)" });
    plays = [
      { status: 200, body: ANSWER }, // the poll: approved, no rollout yet
      { status: 409, body: wave }, // the fetch: a rollout started in between
      { status: 409, body: wave }, // the poll again
      { status: 200, body: ANSWER }, // its wave took it
    ];
    gets.length = 0;
    const lines: string[] = [];
    const outcome = await agent(lines);
    const text = lines.join("\n");
    expect(text).toMatch(/answer: not served yet \(answer from .*: HTTP 409 Conflict\); waiting again/);
    expect(text).toMatch(/waiting for its wave in rollout r1/);
    expect(text).not.toMatch(/answer: FAILED/);
    expect(outcome.answer?.text).toBe(ANSWER);
    expect(gets).toEqual([200, 409, 409, 200, 200]);
    expect(outcome.phase).toBe("answer-fetched"); // no kvmstrap.auto=install: the installer on the console asks
    expect(text).not.toContain(TOKEN);
  });

  it("any other refusal of the fetch still fails at once (exit 2), naming it", async () => {
    plays = [
      { status: 200, body: ANSWER },
      { status: 404, body: "no such node" },
    ];
    gets.length = 0;
    const lines: string[] = [];
    const outcome = await agent(lines);
    expect(outcome.exitCode).toBe(2);
    expect(lines.join("\n")).toMatch(/answer: FAILED: answer from .*: HTTP 404/);
    expect(gets).toEqual([200, 404]);
  });
});
