// The rollout routes through fastify's inject, over the real runner and a real PGlite store: the
// admin token, the parameters' schema, 201/404/409 and the events published on each change.
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
