// The boot server's HTTP side (fastify): iPXE scripts, the netboot artifacts, iPXE binaries for UEFI
// HTTP Boot, --files, each node's own answer (bearer token), the appliance's event intake, the node
// table and a live event stream. Every request that says something about a node is fed to the node
// table. Nothing here logs: answers carry secrets, and fastify's logger stays off.
import { pipeline, Readable, type Transform } from "node:stream";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { ServeFleet } from "../../app/fleet-serve.js";
import {
  MAX_EVENT_BYTES,
  MAX_REPORT_BYTES,
  NODE_PATHS,
  type NodeEvent,
  nodeEventSchema,
  nodeReportSchema,
  TOKEN_REFRESH_HEADER,
} from "../../app/node-protocol.js";
import { VERSION } from "../../core/version.js";
import type { RolloutRunner } from "../../fleet/rollout/runner.js";
import type { Attribution } from "../attribution.js";
import { genericScript, localBootScript, nodeScript, UEFI_LOCAL_LOADER } from "../ipxe-script.js";
import { serveMetrics } from "../metrics.js";
import type { Netboot } from "../netboot.js";
import type { NodeInput } from "../node-state.js";
import type { NodeTable, ServeEvent } from "../node-table.js";
import { type NodeEntry, type NodesConfig, normalizeMac } from "../nodes-file.js";
import { bearer, type NodeTokens } from "../tokens.js";
import { servedAnswer } from "./answer.js";
import { sendArtifact } from "./artifact.js";
import { publishFleetEvent, registerFleetRoutes, requireAdmin } from "./fleet-routes.js";
import { registerRolloutRoutes } from "./rollout-routes.js";
import { openEventStream, wantsEventStream } from "./sse.js";
import { nodeStatus } from "./status.js";
import { registerUi } from "./ui.js";

export interface HttpContext {
  table: NodeTable;
  nodes: NodesConfig;
  netboot: Netboot | undefined;
  ipxeDir: string | undefined;
  filesDir: string | undefined;
  tokens: NodeTokens;
  adminToken: string;
  attribution: Attribution;
  /** The URL nodes reach us at; undefined: taken from each request's Host header. */
  publicBase: string | undefined;
  /** Ignore nodes the nodes file does not list. */
  knownOnly: boolean;
  /** What `GET /v1/status` says about the server itself. */
  info: () => Record<string, unknown>;
  /** Saves which nodes are installed (boot once); awaited before "installed" or a re-arm is acknowledged. */
  persist: () => Promise<void>;
  /** The fleet store's side (src/app/fleet-serve.ts): identity, events, discovery, the fleet routes. */
  fleet?: ServeFleet | undefined;
  /** The rollout runner (with the fleet store): the rollout routes. */
  rollouts?: RolloutRunner | undefined;
  /** This rack's bandwidth cap on /netboot/ bodies (--rack-bandwidth): a throttle per download. */
  artifactThrottle?: (() => Transform) | undefined;
}

const MAC_FILE = /^((?:[0-9a-f]{2}[-:]){5}[0-9a-f]{2})\.ipxe$/i;
const MAC_PARAM = /^(?:[0-9a-f]{2}[-:]){5}[0-9a-f]{2}$/i;
const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;
const ARTIFACT_INPUT: Record<string, NodeInput> = {
  vmlinuz: "kernel",
  "initrd.img": "initrd",
  "filesystem.squashfs": "rootfs",
};

type Query = Record<string, string | undefined>;

export async function buildHttpApp(ctx: HttpContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, forceCloseConnections: true, exposeHeadRoutes: true });
  /** Nodes whose script came from a nodes-file entry (found by MAC, UUID, serial or asset). */
  const assigned = new Map<string, NodeEntry>();
  const streams = new Set<FastifyReply>();

  const base = (req: FastifyRequest): string | undefined =>
    ctx.publicBase ?? (HOST.test(req.host) ? `http://${req.host}` : undefined);
  const text = (reply: FastifyReply, code: number, body: string) =>
    reply
      .code(code)
      .header("content-type", "text/plain; charset=utf-8")
      .header("cache-control", "no-store")
      .send(body);
  const nodeOf = (req: FastifyRequest): string | undefined => {
    const q = (req.query as Query).node;
    if (q && MAC_PARAM.test(q)) return normalizeMac(q);
    return ctx.attribution.lookup(req.ip);
  };

  // The query form (/boot.ipxe?mac=...) is the per-node script too, for clients that build URLs so.
  app.get("/boot.ipxe", async (req, reply) => {
    const mac = (req.query as Query).mac;
    if (mac !== undefined) {
      if (!MAC_PARAM.test(mac)) return text(reply, 404, "not a MAC address\n");
      return nodeBootScript(req, reply, normalizeMac(mac));
    }
    const b = base(req);
    if (!b) return text(reply, 400, "bad Host header\n");
    return text(reply, 200, genericScript(b));
  });

  app.get("/boot/:file", async (req, reply) => {
    const m = MAC_FILE.exec((req.params as { file: string }).file);
    if (!m?.[1]) return text(reply, 404, "not found: /boot/<mac>.ipxe\n");
    return nodeBootScript(req, reply, normalizeMac(m[1]));
  });

  async function nodeBootScript(req: FastifyRequest, reply: FastifyReply, mac: string) {
    const q = req.query as Query;
    const clip = (s: string | undefined) => (s && s.length <= 200 ? s : undefined);
    const entry = ctx.nodes.find({ mac, uuid: clip(q.uuid), serial: clip(q.serial), asset: clip(q.asset) });
    if (!entry && ctx.knownOnly)
      return text(reply, 404, `#!ipxe\necho kvmstrap: ${mac} is not a known node\nexit 1\n`);
    const b = base(req);
    if (!b) return text(reply, 400, "bad Host header\n");
    // A HEAD (a monitoring probe, curl -I) gets the same answer but moves no node.
    const probe = req.method !== "GET";
    const feed = (input: NodeInput, detail: string) => {
      if (!probe) ctx.table.input(mac, input, detail);
    };
    if (!probe) ctx.attribution.learn(req.ip, mac);
    if (entry && !probe) assigned.set(mac, entry);
    // The store learns who the node is (DMI UUID and serial first) before its events are keyed to it.
    if (ctx.fleet && !probe)
      await ctx.fleet
        .identify(mac, { uuid: clip(q.uuid), serial: clip(q.serial), assetTag: clip(q.asset) }, entry?.name)
        .catch(() => {
          // The boot goes on without the store; its events wait for the next identification.
        });
    if ((probe ? ctx.table.get(mac) : ctx.table.touch(mac))?.installed) {
      feed("script-local", "installed: sent to its local disk");
      const loader = ctx.netboot?.files.has(UEFI_LOCAL_LOADER)
        ? `${b}/netboot/${UEFI_LOCAL_LOADER}`
        : undefined;
      return text(reply, 200, localBootScript(mac, loader));
    }
    if (!ctx.netboot) {
      feed("failed", "no netboot set to boot (start the server with --netboot DIR)");
      return text(reply, 503, `#!ipxe\necho kvmstrap: the server has no netboot set\nexit 1\n`);
    }
    // With --fleet, a node the nodes file does not list is discovered: it reports and waits for approval.
    const discover = !entry && ctx.fleet?.discovery === true;
    const auto = entry?.install === true || discover;
    feed(
      "script",
      `${entry?.name ?? (entry ? "known node" : "unknown node")}, ${discover ? "discovery" : auto ? "unattended install" : "interactive"}`,
    );
    return text(
      reply,
      200,
      nodeScript({
        base: b,
        mac,
        name: entry?.name,
        netboot: ctx.netboot,
        token: ctx.tokens.issue(mac),
        auto,
        answer: entry?.answer !== undefined || discover,
        discover,
      }),
    );
  }

  app.route({
    method: ["GET", "HEAD"],
    url: "/netboot/:file",
    exposeHeadRoute: false,
    handler: async (req, reply) => {
      const name = (req.params as { file: string }).file;
      const f = ctx.netboot?.files.get(name);
      if (!f || name === "manifest.json") return text(reply, 404, "not found\n");
      const mac = nodeOf(req);
      const input = ARTIFACT_INPUT[name];
      const track = req.method === "GET" && mac !== undefined && input !== undefined;
      if (track)
        ctx.table.input(
          mac,
          input,
          `GET /netboot/${name}${req.headers.range ? ` (${req.headers.range})` : ""}`,
        );
      return sendArtifact(
        req,
        reply,
        { path: f.path, size: f.size, etag: f.sha256 },
        (o) => {
          if (!track || o.status === 304) return;
          const mib = (o.bytes / 1048576).toFixed(1);
          if (o.complete) ctx.table.input(mac, "http-done", `${name}: ${mib} MiB sent`, o.bytes);
          else ctx.table.input(mac, "http-aborted", `${name}: connection closed after ${mib} MiB`, o.bytes);
        },
        ctx.artifactThrottle,
      );
    },
  });

  // /ipxe/ and --files bodies (an ISO there weighs what the squashfs does) take the rack's cap too.
  const throttle = ctx.artifactThrottle;
  if (throttle)
    app.addHook("onSend", async (req, _reply, payload) =>
      payload instanceof Readable && (req.url.startsWith("/files/") || req.url.startsWith("/ipxe/"))
        ? pipeline(payload, throttle(), () => {})
        : payload,
    );

  // iPXE binaries for UEFI HTTP Boot (the DHCP policy names /ipxe/<file>) and --files: plain
  // directories, where @fastify/static's path confinement and conditional requests are what we want.
  if (ctx.ipxeDir) {
    await app.register(fastifyStatic, {
      root: ctx.ipxeDir,
      prefix: "/ipxe/",
      index: false,
      list: false,
      serveDotFiles: false,
      decorateReply: false,
    });
    app.addHook("onResponse", async (req, reply) => {
      if (!req.url.startsWith("/ipxe/") || req.method !== "GET") return;
      const mac = nodeOf(req);
      if (!mac) return;
      const bytes = Number(reply.getHeader("content-length") ?? 0);
      const file = req.url.slice(6).split("?")[0];
      if (reply.statusCode < 300) ctx.table.input(mac, "tftp-done", `${file} over HTTP (HTTP Boot)`, bytes);
      else ctx.table.input(mac, "tftp-failed", `${file} over HTTP: ${reply.statusCode}`);
    });
  }
  if (ctx.filesDir) {
    await app.register(fastifyStatic, {
      root: ctx.filesDir,
      prefix: "/files/",
      index: false,
      list: false,
      serveDotFiles: false,
      decorateReply: false,
    });
  }

  /** The node named in the path, if the request carries its valid token; otherwise the reply is sent. */
  const authorize = (req: FastifyRequest, reply: FastifyReply): string | undefined => {
    const raw = (req.params as { mac: string }).mac;
    if (!MAC_PARAM.test(raw)) {
      void text(reply, 404, "no such node\n");
      return undefined;
    }
    const mac = normalizeMac(raw);
    const check = ctx.tokens.check(mac, bearer(req.headers.authorization));
    if (!check.ok) {
      const why = { missing: "missing bearer token", invalid: "invalid token", expired: "token expired" }[
        check.reason
      ];
      void reply.code(401).header("www-authenticate", 'Bearer realm="kvmstrap"').send({ error: why });
      return undefined;
    }
    ctx.attribution.learn(req.ip, mac);
    return mac;
  };

  app.get("/v1/nodes/:mac/answer", async (req, reply) => {
    const mac = authorize(req, reply);
    if (!mac) return reply;
    const entry = assigned.get(mac) ?? ctx.nodes.find({ mac });
    const b = base(req);
    if (!b) return text(reply, 400, "bad Host header\n");
    if (!entry?.answer && ctx.fleet?.discovery) return fleetAnswer(reply, mac, b, ctx.fleet);
    if (!entry?.answer) return reply.code(404).send({ error: `no answer file for ${mac}` });
    // A fresh token for the webhook: its lifetime counts from the answer fetch, not from the boot
    // script, so the install and the installed system's first boot can still report.
    const token = ctx.tokens.issue(mac);
    const body = servedAnswer(entry.answer, `${b}${NODE_PATHS.events(mac)}`, token);
    ctx.table.input(
      mac,
      "answer-fetched",
      `answer ${entry.answer.file.split("/").pop()} (${body.length} bytes)`,
    );
    return reply
      .code(200)
      .header("content-type", "application/yaml; charset=utf-8")
      .header("cache-control", "no-store")
      .send(body);
  });

  /** A discovered node's answer: 409 until approved, 423 while held, else merged from --fleet. */
  async function fleetAnswer(reply: FastifyReply, mac: string, b: string, fleet: ServeFleet) {
    const out = await fleet.answerFor(mac);
    if (out.kind === "none") return reply.code(404).send({ error: out.reason });
    if (out.kind !== "ready") {
      const view = await fleet.view(out.node);
      publishFleetEvent(ctx.table, view);
      // The caller's token was checked (authorize): a fresh one, so a node waiting hours for its
      // approval still holds a valid token when it comes (an expired one got 401 before this).
      return reply
        .code(out.kind === "waiting" ? 409 : 423)
        .header("cache-control", "no-store")
        .header(TOKEN_REFRESH_HEADER, ctx.tokens.issue(mac))
        .send({ error: out.reason, node: String(out.node) });
    }
    const body = servedAnswer({ text: out.text }, `${b}${NODE_PATHS.events(mac)}`, ctx.tokens.issue(mac));
    ctx.table.input(mac, "answer-fetched", `fleet answer of ${out.name} (${body.length} bytes)`);
    return reply
      .code(200)
      .header("content-type", "application/yaml; charset=utf-8")
      .header("cache-control", "no-store")
      .send(body);
  }

  // A discovered node's detect report and DMI identity (the node's token, at most 4 MiB).
  app.post(
    "/v1/nodes/:mac/report",
    {
      bodyLimit: MAX_REPORT_BYTES,
      onRequest: async (req, reply) => {
        if (!authorize(req, reply)) return reply;
      },
    },
    async (req, reply) => {
      const mac = normalizeMac((req.params as { mac: string }).mac);
      if (!ctx.fleet) return reply.code(404).send({ error: "this server keeps no fleet store" });
      const parsed = nodeReportSchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return reply
          .code(400)
          .send({ error: `not a node report: ${issue?.path.join(".") || "body"}: ${issue?.message}` });
      }
      const node = await ctx.fleet.saveReport(mac, parsed.data.identity, parsed.data.report);
      ctx.table.input(
        mac,
        "appliance-up",
        `report saved: node ${node.id}${node.approved ? "" : ", waiting for approval"}`,
      );
      publishFleetEvent(ctx.table, node);
      return reply.code(200).send({ node });
    },
  );

  app.post(
    "/v1/nodes/:mac/events",
    {
      bodyLimit: MAX_EVENT_BYTES,
      // The token is checked before the body is read: an unauthenticated sender cannot make us parse.
      onRequest: async (req, reply) => {
        if (!authorize(req, reply)) return reply;
      },
    },
    async (req, reply) => {
      const mac = normalizeMac((req.params as { mac: string }).mac);
      const parsed = nodeEventSchema.safeParse(req.body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return reply
          .code(400)
          .send({ error: `not a node event: ${issue?.path.join(".") || "body"}: ${issue?.message}` });
      }
      const wasInstalled = ctx.table.get(mac)?.installed;
      feedEvent(ctx.table, mac, parsed.data);
      if (ctx.table.get(mac)?.installed !== wasInstalled) await ctx.persist();
      // Acknowledged only once the fleet store committed it: the agent retries a 503.
      if (ctx.fleet)
        try {
          await ctx.fleet.settled(mac);
        } catch {
          return reply.code(503).send({ error: "the fleet store did not take the event; send it again" });
        }
      return reply.code(204).send();
    },
  );

  app.post("/v1/nodes/:mac/rearm", { onRequest: requireAdmin(ctx.adminToken) }, async (req, reply) => {
    const raw = (req.params as { mac: string }).mac;
    if (!MAC_PARAM.test(raw)) return reply.code(400).send({ error: `not a MAC address: ${raw}` });
    const mac = normalizeMac(raw);
    ctx.table.input(mac, "rearm", "re-armed by the operator: the next boot installs again");
    await ctx.persist();
    return reply.code(200).send({ mac, state: ctx.table.get(mac)?.state });
  });

  app.get("/v1/status", async (_req, reply) => {
    // The server's own footprint beside its node count: what a fleet's worth of nodes costs it.
    const { rss, heapUsed } = process.memoryUsage();
    return reply.header("cache-control", "no-store").send({
      version: VERSION,
      server: { ...ctx.info(), nodeCount: ctx.table.size, memory: { rss, heapUsed } },
      nodes: ctx.table.all().map((n) => nodeStatus(n, assigned.get(n.mac) ?? ctx.nodes.find({ mac: n.mac }))),
    });
  });

  // Prometheus text format; unauthenticated like /v1/status (counts and durations, no secrets).
  const metrics = serveMetrics(ctx.table);
  app.get("/metrics", async (_req, reply) =>
    reply
      .header("content-type", metrics.contentType)
      .header("cache-control", "no-store")
      .send(await metrics.text()),
  );

  // JSON lines, one event each, as long as the client stays (`kvmstrap serve status --follow`);
  // Server-Sent Events to a client that asks for them (the web dashboard's EventSource).
  app.get("/v1/events", (req, reply) => {
    if (wantsEventStream(req)) return openEventStream(reply, ctx.table, streams);
    reply.raw.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
    reply.raw.write(
      `${JSON.stringify({ type: "hello", time: new Date().toISOString(), nodes: ctx.table.size })}\n`,
    );
    const off = ctx.table.subscribe((e: ServeEvent) => {
      if (!reply.raw.destroyed) reply.raw.write(`${JSON.stringify(e)}\n`);
    });
    streams.add(reply);
    reply.raw.once("close", () => {
      off();
      streams.delete(reply);
    });
    reply.hijack();
  });
  app.addHook("onClose", async () => {
    metrics.close();
    for (const r of streams) r.raw.end();
  });

  if (ctx.fleet)
    registerFleetRoutes(app, {
      fleet: ctx.fleet,
      adminToken: ctx.adminToken,
      table: ctx.table,
      persist: () => ctx.persist(),
    });
  if (ctx.rollouts)
    registerRolloutRoutes(app, {
      runner: ctx.rollouts,
      authorize: requireAdmin(ctx.adminToken),
      publish: (rollout) => ctx.table.publish({ type: "rollout", time: new Date().toISOString(), rollout }),
    });

  // The web dashboard (dist/web): the page, its script and style; it reads the two routes above.
  await registerUi(app);

  app.setNotFoundHandler((_req, reply) => text(reply, 404, "not found\n"));
  return app;
}

/** What an intake event means for the node's state. Details carry ids and summaries, never secrets. */
export function feedEvent(table: NodeTable, mac: string, e: NodeEvent): void {
  switch (e.type) {
    case "node":
      table.input(mac, e.phase, e.detail);
      return;
    case "run":
      if (e.phase === "FAILED")
        table.input(mac, "failed", `${e.operation ?? "apply"} failed: ${e.error ?? "see the node"}`);
      else table.input(mac, "installing", `${e.operation ?? "apply"} ${e.phase.toLowerCase()}`);
      return;
    case "step":
      if (e.phase === "failed")
        table.input(mac, "installing", `step ${e.id} failed: ${e.error ?? e.summary}`);
      else table.input(mac, "installing", `step ${e.id} ${e.phase}`);
      return;
    default:
      table.input(mac, "installing", e.type);
  }
}
