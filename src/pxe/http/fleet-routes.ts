// The fleet's node routes (GET /v1/fleet/nodes, GET /v1/fleet/nodes/NODE, POST approve, hold and
// rearm, PUT and GET its power settings), behind the admin token like the re-arm route: node reports are inventory, so reads need it
// too. The fleet store is their truth (a second rack's serve sharing the PostgreSQL sees the same);
// each change is published on GET /v1/events as { type: "fleet-node", node }.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { FleetNode, ServeFleet } from "../../app/fleet-serve.js";
import { parsePowerSettings, redactPower } from "../../fleet/power/settings.js";
import type { NodeTable } from "../node-table.js";
import { bearer, constantTimeEqual } from "../tokens.js";

export interface FleetRouteDeps {
  fleet: ServeFleet;
  adminToken: string;
  table: NodeTable;
  /** Saves the boot-once flags (a re-arm must be durable before it is acknowledged). */
  persist: () => Promise<void>;
}

/** An onRequest hook: 401 { error: "admin token required" } unless the admin token is the bearer. */
export function requireAdmin(adminToken: string) {
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const token = bearer(req.headers.authorization);
    if (!token || !constantTimeEqual(token, adminToken))
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="kvmstrap-admin"')
        .send({ error: "admin token required" });
  };
}

/** Tells every /v1/events listener (CLI --follow, the dashboard) that a node changed. */
export function publishFleetEvent(table: NodeTable, node: FleetNode): void {
  table.publish({ type: "fleet-node", time: new Date().toISOString(), node });
}

const NODE_REF = { type: "string", minLength: 1, maxLength: 64, pattern: "^[A-Za-z0-9:._-]+$" } as const;
const params = { type: "object", required: ["node"], properties: { node: NODE_REF } } as const;
const reason = { type: "string", minLength: 1, maxLength: 500 } as const;

export function registerFleetRoutes(app: FastifyInstance, deps: FleetRouteDeps): void {
  const { fleet, table } = deps;
  const admin = requireAdmin(deps.adminToken);
  const by = (req: FastifyRequest) => `operator@${req.ip}`;
  const find = async (req: FastifyRequest, reply: FastifyReply) => {
    const ref = (req.params as { node: string }).node;
    const node = await fleet.find(ref);
    if (!node)
      void reply.code(404).send({ error: `no such node: ${ref} (a node id, one of its MACs or its name)` });
    return node;
  };
  const changed = (node: FleetNode) => {
    publishFleetEvent(table, node);
    return node;
  };

  app.get(
    "/v1/fleet/nodes",
    {
      onRequest: admin,
      schema: {
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: { rack: { type: "string", maxLength: 64 }, state: { type: "string", maxLength: 64 } },
        },
      },
    },
    async (req, reply) => {
      const q = req.query as { rack?: string; state?: string };
      const nodes = await fleet.list({
        ...(q.rack ? { rack: q.rack } : {}),
        ...(q.state ? { state: q.state } : {}),
      });
      return reply.header("cache-control", "no-store").send({ nodes });
    },
  );

  app.get("/v1/fleet/nodes/:node", { onRequest: admin, schema: { params } }, async (req, reply) => {
    const node = await find(req, reply);
    if (!node) return reply;
    return reply.header("cache-control", "no-store").send(await fleet.detail(node));
  });

  app.post(
    "/v1/fleet/nodes/:node/approve",
    {
      onRequest: admin,
      schema: {
        params,
        body: { type: "object", additionalProperties: false, properties: { reason } },
      },
    },
    async (req, reply) => {
      const node = await find(req, reply);
      if (!node) return reply;
      const body = (req.body ?? {}) as { reason?: string };
      return reply.send(changed(await fleet.approve(node, by(req), body.reason)));
    },
  );

  app.post(
    "/v1/fleet/nodes/:node/hold",
    {
      onRequest: admin,
      schema: {
        params,
        body: { type: "object", additionalProperties: false, required: ["reason"], properties: { reason } },
      },
    },
    async (req, reply) => {
      const node = await find(req, reply);
      if (!node) return reply;
      return reply.send(changed(await fleet.hold(node, by(req), (req.body as { reason: string }).reason)));
    },
  );

  // Releases the holds and re-arms every MAC of the node in this serve's table (boot once cleared).
  app.post(
    "/v1/fleet/nodes/:node/rearm",
    {
      onRequest: admin,
      schema: { params, body: { type: "object", additionalProperties: false, properties: {} } },
    },
    async (req, reply) => {
      const node = await find(req, reply);
      if (!node) return reply;
      const view = await fleet.release(node, by(req));
      let rearmed = false;
      for (const mac of node.macs)
        if (table.get(mac)) {
          table.input(mac, "rearm", "re-armed by the operator: the next boot installs again");
          rearmed = true;
        }
      if (rearmed) await deps.persist();
      return reply.send(changed(view));
    },
  );

  // A node's power settings (what the rollout runner powers it on with). They may hold a BMC
  // password: checked by the one schema (src/fleet/power/settings.ts), stored, and given back only
  // redacted; never published as an event. A refusal names the field, never the value.
  app.put(
    "/v1/fleet/nodes/:node/power",
    { onRequest: admin, bodyLimit: 4096, schema: { params } },
    async (req, reply) => {
      const parsed = parsePowerSettings(req.body);
      if (!parsed.ok)
        return reply.code(400).send({ error: `bad power settings: ${parsed.field}: ${parsed.error}` });
      const node = await find(req, reply);
      if (!node) return reply;
      await fleet.setPower(node, parsed.settings);
      return reply.header("cache-control", "no-store").send(redactPower(parsed.settings));
    },
  );

  app.get("/v1/fleet/nodes/:node/power", { onRequest: admin, schema: { params } }, async (req, reply) => {
    const node = await find(req, reply);
    if (!node) return reply;
    const stored = await fleet.power(node);
    // Stored before this schema existed, or by hand: shown only if it still passes, never raw.
    const parsed = stored === undefined ? undefined : parsePowerSettings(stored);
    if (!parsed)
      return reply.code(404).send({
        error: `node ${node.id} has no power settings (kvmstrap fleet power NODE --libvirt|--ipmi|--redfish)`,
      });
    if (!parsed.ok)
      return reply.code(409).send({
        error: `node ${node.id}'s stored power settings are not valid (${parsed.field}: ${parsed.error}); set them again`,
      });
    return reply.header("cache-control", "no-store").send(redactPower(parsed.settings));
  });
}
