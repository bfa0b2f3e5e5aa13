// `kvmstrap fleet rollout start|pause|resume|abort|status`: the rollout of a running `kvmstrap
// serve`, through its authenticated HTTP API (src/app/fleet-client.ts finds the server and its admin
// token). status draws the rollout in 80 columns; --follow redraws it on every rollout event of
// the server's /v1/events stream.
import { FleetClient, request } from "../app/fleet-client.js";
import { OBJECT_NAME } from "../core/grammar.js";
import type { RolloutParams } from "../fleet/rollout/params.js";
import type { RolloutView } from "../fleet/rollout/view.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";

export const FLEET_ROLLOUT_HELP = `Usage: kvmstrap fleet rollout start [limits] [--rack R]... [--node NODE]... [server options]
       kvmstrap fleet rollout pause|resume|abort [ID] [server options]
       kvmstrap fleet rollout status [ID] [--follow] [server options]

  start      Start a rollout over the server's approved nodes (or the racks and nodes named): a
             canary wave that must fully verify, then waves, within the limits below. One
             rollout is active at a time.
  pause      Power nothing more on (nodes in flight go on); resume continues.
  resume     Continue a paused rollout, or one halted at its failure threshold once its failed
             nodes are re-armed or held ("kvmstrap fleet rearm|hold NODE").
  abort      End it: nothing more is powered on; it cannot be resumed.
  status     The rollout's wave, counts, why nothing more is powered on now, and every node.
             ID defaults to the current rollout.

Options:
  --canary N             Nodes in the canary wave (default 1)
  --wave N               Nodes per wave after the canary (default 5)
  --max-in-flight N      Nodes being installed at once, in all (default: the wave size)
  --max-per-rack N       Nodes being installed at once in one rack (default 2)
  --failure-threshold F  Halt when a wave's failed / wave size passes F, 0 to 1 (default 0.2)
  --power-interval S     At least S seconds between two power-ons in one rack (default 10)
  --rack R               Only nodes of rack R (repeatable)
  --node NODE            Only this node, by id or MAC (repeatable)
  --name NAME            The rollout's name (default: rollout-DATE)
  --follow               status: redraw on every change until the rollout ends (Ctrl-C stops)
  --server URL           The running server (default KVMSTRAP_SERVER, else http://127.0.0.1:8080)
  --token-file F         The server's admin token (default KVMSTRAP_ADMIN_TOKEN, else admin.token in
                         serve's default state directory)
  --json                 Print the rollout as JSON (with --follow: one line per change)
  -h, --help             Print this help

Exit 0 when done, 2 for a bad option or a refused action (the server's reason on one line), 1 when
the server cannot be reached.
`;

export const FLEET_ROLLOUT_OPTIONS = {
  canary: { type: "string" },
  wave: { type: "string" },
  "max-in-flight": { type: "string" },
  "max-per-rack": { type: "string" },
  "failure-threshold": { type: "string" },
  "power-interval": { type: "string" },
  rack: { type: "string", multiple: true },
  node: { type: "string", multiple: true },
  name: { type: "string" },
  follow: { type: "boolean" },
  server: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

type Values = ReturnType<typeof parse<typeof FLEET_ROLLOUT_OPTIONS>>["values"];
const START_ONLY = [
  "canary",
  "wave",
  "max-in-flight",
  "max-per-rack",
  "failure-threshold",
  "power-interval",
  "rack",
  "node",
  "name",
] as const;
const NODE_REF = /^(?:[0-9]{1,15}|(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2})$/;

export async function fleetRolloutCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, FLEET_ROLLOUT_OPTIONS);
  const [sub, id, extra] = positionals;
  if (v.help || sub === "help") {
    process.stdout.write(FLEET_ROLLOUT_HELP);
    return EXIT.ok;
  }
  if (sub !== "start" && sub !== "pause" && sub !== "resume" && sub !== "abort" && sub !== "status")
    throw new UsageError(
      sub
        ? `unknown fleet rollout subcommand "${sub}"`
        : "fleet rollout needs a subcommand: start, pause, resume, abort or status",
    );
  if (sub !== "start")
    for (const k of START_ONLY)
      if (v[k] !== undefined) throw new UsageError(`--${k} is for fleet rollout start`);
  if (v.follow && sub !== "status") throw new UsageError("--follow is for fleet rollout status");
  if (sub === "start" ? id !== undefined : extra !== undefined)
    throw new UsageError(`unexpected argument "${sub === "start" ? id : extra}"`);
  if (id !== undefined && sub !== "start" && !/^[0-9]{1,15}$/.test(id))
    throw new UsageError(`fleet rollout ${sub}: "${id}" is not a rollout id`);
  const params = sub === "start" ? startParams(v) : undefined;

  const client = await FleetClient.connect({ server: v.server, tokenFile: v["token-file"] });
  const out = (r: RolloutView) =>
    process.stdout.write(v.json ? `${JSON.stringify(r, null, 2)}\n` : `${rolloutText(r).join("\n")}\n`);
  if (params) {
    out(await client.call<RolloutView>("POST", "/v1/fleet/rollouts", params));
    return EXIT.ok;
  }
  const which = id ?? String((await client.call<RolloutView>("GET", "/v1/fleet/rollouts/current")).id);
  if (sub === "status") {
    const r = await client.call<RolloutView>("GET", `/v1/fleet/rollouts/${which}`);
    if (v.follow) return follow(client, r, Boolean(v.json));
    out(r);
    return EXIT.ok;
  }
  out(await client.call<RolloutView>("POST", `/v1/fleet/rollouts/${which}/${sub}`));
  return EXIT.ok;
}

function startParams(v: Values): RolloutParams {
  const int = (k: "canary" | "wave" | "max-in-flight" | "max-per-rack", dflt: number) => {
    const s = v[k];
    if (s === undefined) return dflt;
    if (!/^\d{1,6}$/.test(s) || Number(s) < 1)
      throw new UsageError(`--${k} ${s}: expected a whole number 1 or more`);
    return Number(s);
  };
  const wave = int("wave", 5);
  const f = v["failure-threshold"] ?? "0.2";
  if (!/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/.test(f))
    throw new UsageError(`--failure-threshold ${f}: expected a fraction from 0 to 1 (0.2: 20%)`);
  const s = v["power-interval"] ?? "10";
  if (!/^\d{1,5}(\.\d{1,3})?$/.test(s) || Number(s) > 86_400)
    throw new UsageError(`--power-interval ${s}: expected seconds from 0 to 86400`);
  for (const r of v.rack ?? [])
    if (!OBJECT_NAME.test(r)) throw new UsageError(`--rack ${r}: not ${OBJECT_NAME.describe}`);
  for (const n of v.node ?? [])
    if (!NODE_REF.test(n)) throw new UsageError(`--node ${n}: not a node id or MAC`);
  if (v.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$/.test(v.name))
    throw new UsageError(`--name ${v.name}: letters, digits, . _ : - (up to 63)`);
  return {
    ...(v.name ? { name: v.name } : {}),
    canarySize: int("canary", 1),
    waveSize: wave,
    maxInFlight: int("max-in-flight", wave),
    maxInFlightPerRack: int("max-per-rack", 2),
    failureThreshold: Number(f),
    powerOnIntervalMs: Math.round(Number(s) * 1000),
    ...(v.rack?.length ? { racks: v.rack } : {}),
    ...(v.node?.length ? { nodes: v.node } : {}),
  };
}

const FINAL = new Set(["done", "aborted"]);

/** Redraws on every rollout event of /v1/events until the rollout ends or the stream does. */
async function follow(client: FleetClient, first: RolloutView, json: boolean): Promise<number> {
  const tty = process.stdout.isTTY && !json;
  const draw = (r: RolloutView) =>
    process.stdout.write(
      json ? `${JSON.stringify(r)}\n` : `${tty ? "\x1b[H\x1b[2J" : "\n"}${rolloutText(r).join("\n")}\n`,
    );
  draw(first);
  if (FINAL.has(first.state)) return EXIT.ok;
  const abort = new AbortController();
  process.once("SIGINT", () => abort.abort());
  const res = await request(`${client.base}/v1/events`, { signal: abort.signal }).catch((e) => {
    if (abort.signal.aborted) return undefined;
    throw e;
  });
  if (!res) return EXIT.ok;
  if (!res.ok || !res.body) throw new InputError(`${client.base}/v1/events: HTTP ${res.status}`);
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let e: { type?: string; rollout?: RolloutView };
        try {
          e = JSON.parse(line);
        } catch {
          continue;
        }
        if (e.type !== "rollout" || e.rollout?.id !== first.id) continue;
        draw(e.rollout);
        if (FINAL.has(e.rollout.state)) return EXIT.ok;
      }
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  }
  return EXIT.ok;
}

const cell = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 3)}...` : s.padEnd(w));

/** The rollout in lines of at most 80 columns. */
export function rolloutText(r: RolloutView): string[] {
  const p = r.params;
  const c = r.counts;
  const lines = [
    `rollout ${r.id} ${r.name}: ${r.state}, ${r.wave === 0 ? "canary wave" : `wave ${r.wave}`}`,
    `  canary ${p.canarySize}, waves of ${p.waveSize}, ${p.maxInFlight} in flight (${p.maxInFlightPerRack} per rack), halt above ${Math.round(p.failureThreshold * 100)}% failed, ${p.powerOnIntervalMs / 1000} s apart`,
    `  waiting ${c.waiting}  in flight ${c.inFlight}  verified ${c.verified}  failed ${c.failed}  held ${c.held}`,
    ...(r.why ? [`  why: ${r.why}`] : []),
    "",
    `${cell("NODE", 16)} ${cell("RACK", 12)} ${cell("WAVE", 6)} ${cell("STATE", 12)} REASON`,
    ...r.nodes.map(
      (n) =>
        `${cell(n.name ?? n.id, 16)} ${cell(n.rack ?? "-", 12)} ${cell(n.wave === null ? "-" : n.wave === 0 ? "canary" : String(n.wave), 6)} ${cell(n.state, 12)} ${n.reason ?? ""}`,
    ),
  ];
  return lines.map((l) => (l.length > 80 ? `${l.slice(0, 77)}...` : l));
}
