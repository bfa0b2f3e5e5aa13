// A server for the dashboard's fleet tests while `kvmstrap serve` does not serve the fleet API yet
// (src/pxe/http/fleet-routes.ts): the contract's routes (/tmp/kvmstrap-fleet-api.md: /v1/fleet/nodes,
// approve, hold, rearm, the current rollout with pause, resume and abort) over a real FleetStore on
// PGlite in a temp dir, behind a Bearer admin token (401 { error: "admin token required" }); the
// built dashboard through the shipped /ui/ route (src/pxe/http/ui.ts); and GET /v1/events as SSE with
// the contract's fleet events, made from the store's own committed events (store.subscribe), so a
// change written straight into the store (as the rollout runner would) reaches the page as well.
// GET /v1/status answers the boot server's shape with no nodes. Rollout transitions go through the
// real transition table (src/fleet/rollout/states.ts): 409 where it refuses.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import Fastify, { type FastifyReply, type FastifyRequest } from "fastify";
import {
  IN_FLIGHT,
  type NodeRolloutState,
  type RolloutEvent,
  type RolloutState,
  rolloutTransition,
} from "../../../src/fleet/rollout/states.js";
import { type FleetStore, openPglite } from "../../../src/fleet/store/index.js";
import { registerUi } from "../../../src/pxe/http/ui.js";
import type { FleetNode, FleetNodeDetail, Rollout } from "../../../src/pxe/web/fleet.js";

export interface FleetTestServer {
  base: string;
  /** The admin token; `rotate()` replaces it (as a serve restarted with a new state directory would). */
  token: string;
  rotate: () => string;
  store: FleetStore;
  /** Node names, as serve's nodes file gives them (the store keeps none). */
  names: Map<number, string>;
  /** The requests the fleet routes answered: method, URL and the Authorization header's scheme. */
  requests: { method: string; url: string; auth: string | undefined; body: unknown }[];
  /** Makes a node as a PXE boot does (identity resolution), named and in a rack. */
  addNode: (o: { name: string; rack: string; mac: string; serial: string }) => Promise<number>;
  startRollout: (
    name: string,
    nodes: { id: number; wave: number; state: NodeRolloutState }[],
  ) => Promise<number>;
  close: () => Promise<void>;
}

export async function startFleetServer(tag: string): Promise<FleetTestServer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvms-web-fleet-${tag}-${process.pid}-`));
  const store = await openPglite(path.join(dir, "fleet"));
  let token = randomBytes(24).toString("base64url");
  const names = new Map<number, string>();
  const requests: FleetTestServer["requests"] = [];
  const streams = new Set<(chunk: string) => void>();
  const sockets = new Set<import("node:http").ServerResponse>();
  let current: number | undefined;

  const approved = async (id: number) =>
    (await store.sql.query("SELECT 1 FROM approvals WHERE node_id = $1", [id])).length > 0;

  async function fleetNode(id: number): Promise<FleetNode | undefined> {
    const row = await store.node(id);
    if (!row) return undefined;
    const holds = await store.holds(id);
    const ok = await approved(id);
    const last = (
      await store.sql.query(
        "SELECT time, type, state, body FROM events WHERE node_id = $1 ORDER BY seq DESC LIMIT 1",
        [id],
      )
    )[0];
    return {
      id: row.id,
      name: names.get(row.id) ?? null,
      rack: row.rack,
      macs: row.macs,
      uuid: row.uuid,
      serial: row.serial,
      assetTag: row.assetTag,
      state: row.state,
      approved: ok,
      held: holds.length > 0,
      holds: holds.map((h) => ({ source: h.source, reason: h.reason, since: h.createdAt.toISOString() })),
      lastEvent: last
        ? {
            time: new Date(last.time as string).toISOString(),
            detail: detailOf(last.body) ?? String(last.type),
          }
        : null,
      answer: holds.length ? "held" : "ready",
    };
  }

  async function fleetNodeDetail(id: number): Promise<FleetNodeDetail | undefined> {
    const n = await fleetNode(id);
    if (!n) return undefined;
    const rows = await store.sql.query(
      "SELECT time, state, body FROM events WHERE node_id = $1 AND state IS NOT NULL ORDER BY seq",
      [id],
    );
    const timeline = rows.map((r) => ({
      time: new Date(r.time as string).toISOString(),
      state: String(r.state),
      detail: detailOf(r.body),
    }));
    const failed = [...rows].reverse().find((r) => r.state === "failed");
    const log = (failed?.body as { log?: unknown } | undefined)?.log;
    return {
      ...n,
      timeline,
      report: null,
      flags: (await store.flags(id)).map((f) => ({ kind: f.kind, detail: f.detail })),
      failure: failed
        ? {
            time: new Date(failed.time as string).toISOString(),
            detail: detailOf(failed.body) ?? "failed",
            log: typeof log === "string" ? log : null,
          }
        : null,
    };
  }

  async function rollout(id: number): Promise<Rollout | undefined> {
    const r = await store.rollout(id);
    if (!r) return undefined;
    const nodes = await store.rolloutNodes(id);
    const rows = await Promise.all(nodes.map((n) => store.node(n.nodeId)));
    const states = nodes.map((n) => n.state as NodeRolloutState);
    const counts = {
      waiting: states.filter((s) => s === "waiting").length,
      inFlight: states.filter((s) => IN_FLIGHT.has(s)).length,
      verified: states.filter((s) => s === "verified").length,
      failed: states.filter((s) => s === "failed").length,
      held: states.filter((s) => s === "held").length,
    };
    const wave = Math.max(0, ...nodes.filter((n) => n.state !== "waiting").map((n) => n.wave));
    const params = (r.params ?? {}) as Record<string, unknown>;
    const paused = r.status === "paused" || r.status === "canary-paused";
    return {
      id: r.id,
      name: r.name,
      state: r.status,
      params,
      wave,
      nodes: nodes.map((n, i) => ({
        id: n.nodeId,
        name: names.get(n.nodeId) ?? null,
        rack: rows[i]?.rack ?? null,
        state: n.state,
        wave: n.state === "waiting" ? null : n.wave,
        reason: n.detail,
      })),
      counts,
      why: paused
        ? "paused by the operator"
        : counts.inFlight >= Number(params.maxInFlight ?? Number.POSITIVE_INFINITY)
          ? `${counts.inFlight} in flight, the most allowed (maxInFlight ${params.maxInFlight})`
          : null,
      events: [],
    };
  }

  // Fleet events from the store's committed events: a node's change sends the node, a rollout's the rollout.
  const unsubscribe = await store.subscribe((events) => {
    void (async () => {
      const nodes = new Set<number>();
      let rolloutChanged = false;
      for (const e of events) {
        if (e.type.startsWith("rollout")) rolloutChanged = true;
        if (e.nodeId != null && !e.type.startsWith("rollout")) nodes.add(e.nodeId);
      }
      for (const id of nodes) {
        const node = await fleetNode(id);
        if (node) broadcast({ type: "fleet-node", node });
      }
      if (rolloutChanged && current !== undefined) {
        const r = await rollout(current);
        if (r) broadcast({ type: "rollout", rollout: r });
      }
    })();
  });
  const broadcast = (e: unknown) => {
    for (const send of streams) send(`data: ${JSON.stringify(e)}\n\n`);
  };

  const app = Fastify({ logger: false });
  await registerUi(app);
  app.get("/v1/status", async () => ({ version: "fleet-test", server: {}, nodes: [] }));
  app.get("/v1/events", async (_req, reply) => {
    const res = reply.raw;
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store" });
    res.write(`retry: 2000\nevent: hello\ndata: ${JSON.stringify({ type: "hello" })}\n\n`);
    const send = (chunk: string) => {
      if (!res.destroyed) res.write(chunk);
    };
    streams.add(send);
    sockets.add(res);
    res.once("close", () => {
      streams.delete(send);
      sockets.delete(res);
    });
    reply.hijack();
  });

  // The admin token on every fleet route, reads included (node reports are inventory).
  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!req.url.startsWith("/v1/fleet/")) return;
    requests.push({ method: req.method, url: req.url, auth: req.headers.authorization, body: undefined });
    const got = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (got !== token)
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="kvmstrap-admin"')
        .send({ error: "admin token required" });
  });
  app.addHook("preHandler", async (req) => {
    const last = requests.at(-1);
    if (last && req.url.startsWith("/v1/fleet/")) last.body = req.body;
  });

  /** NODE: the numeric id, a MAC or a name. */
  async function findNode(ref: string): Promise<number | undefined> {
    if (/^\d+$/.test(ref)) return (await store.node(Number(ref)))?.id;
    if (/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(ref)) return (await store.nodeByMac(ref.toLowerCase()))?.id;
    for (const [id, name] of names) if (name === ref) return id;
    return undefined;
  }
  const notFound = (reply: FastifyReply, what: string) => reply.code(404).send({ error: `no node ${what}` });

  app.get<{ Querystring: { rack?: string; state?: string } }>("/v1/fleet/nodes", async (req) => {
    const rows = await store.nodes({
      ...(req.query.rack ? { rack: req.query.rack } : {}),
      ...(req.query.state ? { state: req.query.state } : {}),
    });
    return { nodes: (await Promise.all(rows.map((r) => fleetNode(r.id)))).filter(Boolean) };
  });
  app.get<{ Params: { node: string } }>("/v1/fleet/nodes/:node", async (req, reply) => {
    const id = await findNode(req.params.node);
    const d = id === undefined ? undefined : await fleetNodeDetail(id);
    return d ?? notFound(reply, req.params.node);
  });
  app.post<{ Params: { node: string; action: string }; Body: { reason?: unknown } | null }>(
    "/v1/fleet/nodes/:node/:action",
    async (req, reply) => {
      const id = await findNode(req.params.node);
      if (id === undefined) return notFound(reply, req.params.node);
      const reason = typeof req.body?.reason === "string" ? req.body.reason.trim() : "";
      switch (req.params.action) {
        case "approve":
          await store.approve(id, "operator", reason || undefined);
          break;
        case "hold":
          if (!reason) return reply.code(400).send({ error: "hold: a reason is required" });
          await store.hold(id, "operator", reason, "operator");
          break;
        case "rearm":
          await store.release(id, "operator");
          break;
        default:
          return reply.code(404).send({ error: `no action ${req.params.action}` });
      }
      return fleetNode(id);
    },
  );
  app.get("/v1/fleet/rollouts/current", async (_req, reply) => {
    const r = current === undefined ? undefined : await rollout(current);
    return r ?? reply.code(404).send({ error: "no rollout" });
  });
  app.post<{ Params: { id: string; action: string } }>(
    "/v1/fleet/rollouts/:id/:action",
    async (req, reply) => {
      const r = await store.rollout(Number(req.params.id));
      if (!r) return reply.code(404).send({ error: `no rollout ${req.params.id}` });
      const action = req.params.action as RolloutEvent;
      if (!["pause", "resume", "abort"].includes(action))
        return reply.code(404).send({ error: `no action ${req.params.action}` });
      const t = rolloutTransition(r.status as RolloutState, action);
      if (!t.expected) return reply.code(409).send({ error: `a ${r.status} rollout cannot ${action}` });
      await store.setRolloutStatus(r.id, t.state);
      return rollout(r.id);
    },
  );

  await app.listen({ host: "127.0.0.1", port: 0 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;

  const server: FleetTestServer = {
    base: `http://127.0.0.1:${port}`,
    token,
    rotate: () => {
      token = randomBytes(24).toString("base64url");
      server.token = token;
      return token;
    },
    store,
    names,
    requests,
    addNode: async (o) => {
      const { node } = await store.resolveNode(
        { serial: o.serial, macs: [o.mac], complete: true },
        { rack: o.rack, source: "test" },
      );
      names.set(node.id, o.name);
      await store.append({
        type: "node-state",
        nodeId: node.id,
        state: "discovered",
        body: { detail: "first boot seen" },
      });
      return node.id;
    },
    startRollout: async (name, nodes) => {
      const id = await store.createRollout(
        name,
        {
          canarySize: 1,
          waveSize: 4,
          maxInFlight: 2,
          maxInFlightPerRack: 1,
          failureThreshold: 0.25,
          powerOnIntervalMs: 1000,
        },
        "running",
      );
      current = id;
      for (const n of nodes) await store.setRolloutNode(id, n.id, n.wave, n.state);
      return id;
    },
    close: async () => {
      for (const res of sockets) res.destroy(); // open event streams would keep the server from closing
      await app.close().catch(() => {});
      await unsubscribe().catch(() => {});
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

function detailOf(body: unknown): string | null {
  const d = (body as { detail?: unknown } | null)?.detail;
  return typeof d === "string" ? d : null;
}
