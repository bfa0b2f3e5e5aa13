// The rollout routes through fastify's inject, over the real runner and a real PGlite store: the
// admin token, the parameters' schema, 201/404/409 and the events published on each change.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { fleetRolloutCommand } from "../../../src/cli/fleet-rollout-command.js";
import { exitCodeOf } from "../../../src/core/errors.js";
import { RolloutRunner } from "../../../src/fleet/rollout/runner.js";
import type { RolloutView } from "../../../src/fleet/rollout/view.js";
import { type FleetStore, openPglite } from "../../../src/fleet/store/index.js";
import { RolloutStore } from "../../../src/fleet/store/rollouts.js";
import { registerRolloutRoutes } from "../../../src/pxe/http/rollout-routes.js";
import { RecordingPower } from "./recording-power.js";

const TOKEN = "t0ken-for-the-routes-test";
const dir = mkdtempSync(path.join(os.tmpdir(), `kvmstrap-rollout-routes-${process.pid}-`));
let store: FleetStore;
let app: FastifyInstance;
let runner: RolloutRunner;
const power = new RecordingPower();
const published: RolloutView[] = [];
const auth: Record<string, string> = { authorization: `Bearer ${TOKEN}` };
const good = {
  canarySize: 1,
  waveSize: 2,
  maxInFlight: 2,
  maxInFlightPerRack: 1,
  failureThreshold: 0.5,
  powerOnIntervalMs: 0,
};

beforeAll(async () => {
  store = await openPglite(dir);
  for (const [i, rack] of ["r1", "r1", "r2"].entries()) {
    const { node } = await store.resolveNode({ serial: `SN-${i}`, macs: [`52:54:00:00:01:0${i}`] }, { rack });
    await store.approve(node.id, "test");
    await new RolloutStore(store).setPower(node.id, { driver: "libvirt", domain: `dom-${i}` });
  }
  runner = new RolloutRunner({ store, power: power.port });
  await runner.start();
  app = Fastify({ logger: false });
  registerRolloutRoutes(app, {
    runner,
    authorize: async (req: FastifyRequest, reply: FastifyReply) => {
      if (req.headers.authorization !== `Bearer ${TOKEN}`)
        return reply.code(401).send({ error: "admin token required" });
    },
    publish: (rollout) => published.push(rollout),
  });
  await app.ready();
}, 120_000);

afterAll(async () => {
  await app?.close();
  await runner?.stop();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const post = (url: string, payload?: object, headers = auth) =>
  app.inject({ method: "POST", url, headers, ...(payload === undefined ? {} : { payload }) });
const get = (url: string, headers = auth) => app.inject({ method: "GET", url, headers });

describe("the rollout routes", () => {
  it("need the admin token, on reads too", async () => {
    for (const r of [
      await get("/v1/fleet/rollouts/current", {}),
      await get("/v1/fleet/rollouts/1", { authorization: "Bearer wrong" }),
      await post("/v1/fleet/rollouts", good, {}),
      await post("/v1/fleet/rollouts/1/abort", undefined, {}),
    ]) {
      expect(r.statusCode).toBe(401);
      expect(r.json()).toEqual({ error: "admin token required" });
    }
    expect(power.calls).toEqual([]);
  });

  it("refuse parameters out of range, naming the field", async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, canarySize: 0 }, /canarySize/],
      [{ ...good, waveSize: 0 }, /waveSize/],
      [{ ...good, failureThreshold: 1.5 }, /failureThreshold/],
      [{ ...good, failureThreshold: -0.1 }, /failureThreshold/],
      [{ ...good, maxInFlightPerRack: 2.5 }, /maxInFlightPerRack/],
      [{ ...good, powerOnIntervalMs: -1 }, /powerOnIntervalMs/],
      [{ ...good, racks: ["bad rack!"] }, /racks/],
      [{ ...good, rack: "r1" }, /unknown key "rack"/],
      [{ canarySize: 1 }, /waveSize|required/],
    ];
    for (const [body, why] of cases) {
      const r = await post("/v1/fleet/rollouts", body);
      expect(r.statusCode, JSON.stringify(body)).toBe(400);
      expect(r.json().error).toMatch(why);
    }
    expect((await get("/v1/fleet/rollouts/current")).statusCode).toBe(404);
  });

  it("start one rollout (201, 409 for a second), read it, pause, resume and abort it as the table allows", async () => {
    expect((await post("/v1/fleet/rollouts", { ...good, racks: ["nowhere"] })).statusCode).toBe(400);
    const created = await post("/v1/fleet/rollouts", { ...good, name: "first" });
    expect(created.statusCode).toBe(201);
    const r = created.json() as RolloutView;
    expect(r).toMatchObject({ name: "first", state: "canary", wave: 0, params: { canarySize: 1 } });
    expect(r.nodes).toHaveLength(3);
    expect(r.counts.inFlight).toBe(1);
    expect(published.at(-1)?.id).toBe(r.id);

    const again = await post("/v1/fleet/rollouts", good);
    expect(again.statusCode).toBe(409);
    expect(again.json().error).toMatch(/first.*canary/);

    expect((await get("/v1/fleet/rollouts/current")).json()).toMatchObject({ id: r.id, state: "canary" });
    expect((await get(`/v1/fleet/rollouts/${r.id}`)).json()).toMatchObject({ id: r.id, name: "first" });
    expect((await get("/v1/fleet/rollouts/999")).statusCode).toBe(404);
    expect((await get("/v1/fleet/rollouts/abc")).statusCode).toBe(400);

    const paused = await post(`/v1/fleet/rollouts/${r.id}/pause`);
    expect(paused.statusCode).toBe(200);
    expect(paused.json().state).toBe("canary-paused");
    expect(published.at(-1)?.state).toBe("canary-paused");
    const twice = await post(`/v1/fleet/rollouts/${r.id}/pause`);
    expect(twice.statusCode).toBe(409);
    expect(twice.json().error).toMatch(/canary-paused: it cannot pause/);
    expect((await post(`/v1/fleet/rollouts/${r.id}/resume`)).json().state).toBe("canary");
    expect((await post(`/v1/fleet/rollouts/${r.id}/abort`)).json().state).toBe("aborted");
    const late = await post(`/v1/fleet/rollouts/${r.id}/resume`);
    expect(late.statusCode).toBe(409);
    expect((await post("/v1/fleet/rollouts/999/abort")).statusCode).toBe(404);
    // Aborted is over: a new rollout may start.
    expect((await post("/v1/fleet/rollouts", { ...good, nodes: ["52:54:00:00:01:02"] })).statusCode).toBe(
      201,
    );
    const current = (await get("/v1/fleet/rollouts/current")).json() as RolloutView;
    expect(current.nodes).toHaveLength(1);
    expect(current.nodes[0]?.rack).toBe("r2");
  }, 60_000);
});

/** Runs the CLI command in this process, with its output. */
async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    return { code: await fleetRolloutCommand(argv), out };
  } catch (e) {
    return { code: exitCodeOf(e), out: (e as Error).message };
  } finally {
    spy.mockRestore();
  }
}

describe("kvmstrap fleet rollout against the routes", () => {
  let server: string[];
  beforeAll(async () => {
    const tokenFile = path.join(dir, "admin.token");
    writeFileSync(tokenFile, `${TOKEN}\n`);
    server = ["--server", await app.listen({ port: 0, host: "127.0.0.1" }), "--token-file", tokenFile];
  });

  it("exits 2 naming the option for bad options, before asking the server", async () => {
    const bad: [string[], RegExp][] = [
      [["start", "--canary", "0"], /--canary 0/],
      [["start", "--wave", "two"], /--wave two/],
      [["start", "--failure-threshold", "1.5"], /--failure-threshold 1.5/],
      [["start", "--power-interval=-3"], /--power-interval -3: expected seconds/],
      [["start", "--rack", "a/b"], /--rack a\/b/],
      [["pause", "--wave", "2"], /--wave is for fleet rollout start/],
      [["status", "--nope"], /nope/],
      [["abort", "x1"], /"x1" is not a rollout id/],
      [["restart"], /unknown fleet rollout subcommand "restart"/],
      [["start", "--follow"], /--follow is for fleet rollout status/],
    ];
    for (const [argv, why] of bad) {
      const r = await cli(...argv, "--server", "http://127.0.0.1:9");
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.out).toMatch(why);
      expect(r.out.split("\n")).toHaveLength(1);
    }
  });

  it("starts, shows, pauses and aborts a rollout; a refused action exits 2 with the server's reason", async () => {
    const current = (await get("/v1/fleet/rollouts/current")).json() as RolloutView;
    expect((await cli("abort", String(current.id), ...server)).out).toMatch(/: aborted/);
    const started = await cli(
      "start",
      "--canary",
      "1",
      "--wave",
      "2",
      "--max-per-rack",
      "1",
      "--power-interval",
      "0",
      "--name",
      "cli-run",
      ...server,
    );
    expect(started.code).toBe(0);
    expect(started.out).toMatch(/^rollout \d+ cli-run: canary, canary wave/);
    for (const line of started.out.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
    const status = await cli("status", "--json", ...server);
    const view = JSON.parse(status.out) as RolloutView;
    expect(view).toMatchObject({
      name: "cli-run",
      state: "canary",
      params: { waveSize: 2, maxInFlight: 2, powerOnIntervalMs: 0 },
    });
    expect((await cli("pause", ...server)).out).toMatch(/canary-paused/);
    const refused = await cli("pause", ...server);
    expect(refused.code).toBe(2);
    expect(refused.out).toMatch(/canary-paused: it cannot pause/);
    const text = await cli("status", String(view.id), ...server);
    expect(text.out).toMatch(/NODE +RACK +WAVE +STATE/);
    expect(text.out).toMatch(/why: rollout canary-paused/);
    expect((await cli("abort", ...server)).out).toMatch(/: aborted/);
    const wrong = await cli(
      "status",
      "--server",
      server[1] as string,
      "--token-file",
      path.join(dir, "nope"),
    );
    expect(wrong.code).toBe(2);
    expect(wrong.out).toMatch(/cannot read the admin token/);
  }, 60_000);
});
