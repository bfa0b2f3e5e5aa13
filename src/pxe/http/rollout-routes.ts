// The rollout routes of the fleet API (see the fleet API contract in src/fleet/README.md): create
// and start a rollout, read the current one or one by id, pause, resume and abort it. Every route
// needs the admin token; the body is bounded by the rollout parameters' JSON schema before the
// runner sees it; a transition the table refuses is a 409; every change goes to /v1/events as
// { type: "rollout", rollout }.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ROLLOUT_PARAMS_SCHEMA, type RolloutParams } from "../../fleet/rollout/params.js";
import { RolloutRefused, type RolloutRunner } from "../../fleet/rollout/runner.js";
import type { RolloutView } from "../../fleet/rollout/view.js";

export interface RolloutRouteDeps {
  runner: RolloutRunner;
  /** The admin token check, as an onRequest hook: it sends the 401 itself. */
  authorize: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>;
  /** Publishes { type: "rollout", rollout } on the event stream. */
  publish: (rollout: RolloutView) => void;
}

const ID = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string", pattern: "^[0-9]{1,15}$" } },
};
const ACTIONS = ["pause", "resume", "abort"] as const;

export function registerRolloutRoutes(app: FastifyInstance, deps: RolloutRouteDeps): void {
  const { runner } = deps;
  const by = (req: FastifyRequest) => `operator@${req.ip}`;
  const fail = (reply: FastifyReply, e: unknown) => {
    if (e instanceof RolloutRefused) return reply.code(e.status).send({ error: e.message });
    throw e;
  };

  // A body the schema refuses gets one line naming the field, like every other fleet error.
  const schemaError = (_req: FastifyRequest, reply: FastifyReply, e: Error & { validation?: unknown }) => {
    if (e.validation) return reply.code(400).send({ error: `bad rollout parameters: ${e.message}` });
    return reply.send(e);
  };

  app.post(
    "/v1/fleet/rollouts",
    {
      onRequest: deps.authorize,
      // fastify's validator drops unknown keys; a typo ("rack" for "racks") must not silently
      // widen a rollout to every node, so an unknown key is refused before it runs.
      preValidation: async (req, reply) => {
        const body = req.body;
        if (body === null || typeof body !== "object" || Array.isArray(body)) return;
        const unknown = Object.keys(body).find((k) => !(k in ROLLOUT_PARAMS_SCHEMA.properties));
        if (unknown)
          return reply.code(400).send({ error: `bad rollout parameters: unknown key "${unknown}"` });
      },
      bodyLimit: 1 << 20,
      schema: { body: ROLLOUT_PARAMS_SCHEMA },
      errorHandler: (e, req, reply) => schemaError(req, reply, e),
    },
    async (req, reply) => {
      try {
        const view = await runner.create(req.body as RolloutParams, by(req));
        deps.publish(view);
        return reply.code(201).send(view);
      } catch (e) {
        return fail(reply, e);
      }
    },
  );

  app.get("/v1/fleet/rollouts/current", { onRequest: deps.authorize }, async (_req, reply) => {
    const view = await runner.view();
    if (!view) return reply.code(404).send({ error: "no rollout yet" });
    return reply.header("cache-control", "no-store").send(view);
  });

  app.get(
    "/v1/fleet/rollouts/:id",
    {
      onRequest: deps.authorize,
      schema: { params: ID },
      errorHandler: (e, req, reply) => schemaError(req, reply, e),
    },
    async (req, reply) => {
      const id = Number((req.params as { id: string }).id);
      const view = await runner.view(id);
      if (!view) return reply.code(404).send({ error: `no rollout ${id}` });
      return reply.header("cache-control", "no-store").send(view);
    },
  );

  for (const action of ACTIONS)
    app.post(
      `/v1/fleet/rollouts/:id/${action}`,
      {
        onRequest: deps.authorize,
        schema: { params: ID },
        errorHandler: (e, req, reply) => schemaError(req, reply, e),
      },
      async (req, reply) => {
        try {
          const view = await runner.act(Number((req.params as { id: string }).id), action, by(req));
          deps.publish(view);
          return reply.send(view);
        } catch (e) {
          return fail(reply, e);
        }
      },
    );
}
