// `kvmstrap fleet`: the node commands against a running `kvmstrap serve` (nodes, show, approve, hold,
// rearm; src/app/fleet-client.ts), `rollout` (fleet-rollout-command.ts), `power`
// (fleet-power-command.ts), `store-copy` (fleet-store-command.ts), and answer|explain, a
// node's layered answer from a fleet directory, offline.

import {
  answerText,
  explainText,
  type FleetNodeQuery,
  fleetExplain,
  fleetNodeAnswer,
} from "../app/fleet-answer.js";
import {
  type FleetClient as Client,
  FleetClient,
  type FleetNode,
  type FleetNodeDetail,
} from "../app/fleet-client.js";
import { HOSTNAME, MAC, OBJECT_NAME } from "../core/grammar.js";
import { readReport } from "./answer-command.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";
import { fleetPowerCommand, NODE_REF } from "./fleet-power-command.js";
import { fleetRolloutCommand } from "./fleet-rollout-command.js";
import { fleetStoreCopyCommand } from "./fleet-store-command.js";

export const FLEET_HELP = `Usage: kvmstrap fleet nodes [--rack R] [--state S] [server options]
       kvmstrap fleet show|approve|rearm NODE [server options]
       kvmstrap fleet hold NODE --reason R [server options]
       kvmstrap fleet rollout ...            (kvmstrap fleet rollout --help)
       kvmstrap fleet power NODE [driver]    (kvmstrap fleet power --help)
       kvmstrap fleet store-copy --from DIR|URL --to DIR|URL   (--help)
       kvmstrap fleet <answer|explain> NODE [KEY] --fleet DIR [options]

Against a running kvmstrap serve (its fleet store), NODE is a node id, one of its MACs or its name:
  nodes              Every node: id, rack, state, approval, holds, the answer's status
  show NODE          One node: identity, holds, identity flags, its hardware, its timeline
  approve NODE       Let it install (hold before destroy: a discovered node waits for this)
  hold NODE          Keep it from installing, with --reason
  rearm NODE         Release its holds; an installed or failed node installs again on its next boot
  power NODE         How a rollout powers it on: libvirt, IPMI or Redfish (own options and --help)

Offline, from a fleet directory:
  answer NODE        The node's merged answer: site.yaml, then its rack, its roles and its node file,
                     each value with the layer, file and line that set it; checked against the
                     node's report with the same rules as "kvmstrap answer validate". Exit 0 when the
                     answer is ready, 1 when the node is held (each reason as file:line:col: key).
  explain NODE KEY   Which layer set each value under KEY (e.g. network.bridges), and what it
                     replaced.

Options:
  --fleet DIR        The fleet directory: site.yaml, racks/RACK.yaml, roles/ROLE.yaml,
                     nodes/NODE.yaml, assign.yaml (see src/fleet/README.md)
  --report FILE      The node's report, saved by "kvmstrap detect --json"; without it the node is
                     held (nothing checked its answer against its hardware)
  --rack RACK        The rack the node boots in (default: as assign.yaml says)
  --serial S         The node's DMI serial number, for assign.yaml rules on serial
  --asset-tag T      Its DMI asset tag, for rules on assetTag
  --uuid U           Its DMI system UUID, for rules on uuid
  --mac MAC          A MAC of the node, for rules on mac (repeatable; default: the report's NICs)
  --state S          For nodes: only nodes in this state (held, discovered, installing...)
  --reason R         Why (hold: required; approve: optional)
  --server URL       The running server (default KVMSTRAP_SERVER, else http://127.0.0.1:8080)
  --token-file F     The server's admin token (default KVMSTRAP_ADMIN_TOKEN, else admin.token in
                     serve's default state directory)
  --json             Print the result as JSON
  -h, --help         Print this help

A bad fleet file exits 2 with file:line:col: key: message for every problem. Against a server:
exit 1 when it cannot be reached (naming its URL), 2 for a bad node or a refused token.
`;

export const FLEET_OPTIONS = {
  fleet: { type: "string" },
  report: { type: "string" },
  rack: { type: "string" },
  serial: { type: "string" },
  "asset-tag": { type: "string" },
  uuid: { type: "string" },
  mac: { type: "string", multiple: true },
  state: { type: "string" },
  reason: { type: "string" },
  server: { type: "string" },
  "token-file": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const SERVER_COMMANDS = ["nodes", "show", "approve", "hold", "rearm"] as const;
type ServerCommand = (typeof SERVER_COMMANDS)[number];
type Values = ReturnType<typeof parse<typeof FLEET_OPTIONS>>["values"];

export async function fleetCommand(argv: string[]): Promise<number> {
  // rollout has its own options and help.
  if (argv[0] === "rollout") return fleetRolloutCommand(argv.slice(1));
  if (argv[0] === "power") return fleetPowerCommand(argv.slice(1));
  if (argv[0] === "store-copy") return fleetStoreCopyCommand(argv.slice(1));
  const { values, positionals } = parse(argv, FLEET_OPTIONS);
  const [sub, node, key, extra] = positionals;
  if (values.help || sub === "help") {
    process.stdout.write(FLEET_HELP);
    return EXIT.ok;
  }
  if ((SERVER_COMMANDS as readonly string[]).includes(sub ?? ""))
    return serverCommand(sub as ServerCommand, positionals.slice(1), values);
  if (sub !== "answer" && sub !== "explain")
    throw new UsageError(
      sub
        ? `unknown fleet subcommand "${sub}"`
        : "fleet needs a subcommand: nodes, show, approve, hold, rearm, rollout, power, store-copy, answer or explain",
    );
  for (const k of ["state", "reason", "server", "token-file"] as const)
    if (values[k] !== undefined)
      throw new UsageError(`--${k} is for the commands against a server, not fleet ${sub}`);
  if (!node) throw new UsageError(`fleet ${sub} needs a node name`);
  if (!HOSTNAME.test(node)) throw new UsageError(`fleet ${sub}: node "${node}" is not ${HOSTNAME.describe}`);
  if (sub === "explain" && !key) throw new UsageError("fleet explain needs a key, such as network.bridges");
  const unexpected = sub === "answer" ? key : extra;
  if (unexpected) throw new UsageError(`unexpected argument "${unexpected}"`);
  if (!values.fleet) throw new UsageError(`fleet ${sub} needs --fleet DIR`);
  for (const m of values.mac ?? []) if (!MAC.test(m)) throw new UsageError(`--mac ${m}: not ${MAC.describe}`);
  if (values.rack !== undefined && !OBJECT_NAME.test(values.rack))
    throw new UsageError(`--rack ${values.rack}: not ${OBJECT_NAME.describe}`);

  const query: FleetNodeQuery = {
    fleet: values.fleet,
    name: node,
    rack: values.rack ?? null,
    serial: values.serial ?? null,
    assetTag: values["asset-tag"] ?? null,
    uuid: values.uuid ?? null,
    ...(values.mac ? { macs: values.mac } : {}),
    report: values.report ? await readReport(values.report) : null,
  };
  const json = (data: unknown) => process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
  if (sub === "explain") {
    const e = await fleetExplain(query, key as string);
    if (values.json) json(e);
    else process.stdout.write(explainText(e));
    return EXIT.ok;
  }
  const a = await fleetNodeAnswer(query);
  if (values.json) {
    const { answer: _checked, ...rest } = a;
    json(rest);
  } else process.stdout.write(answerText(a));
  return a.status === "ready" ? EXIT.ok : EXIT.failed;
}

async function serverCommand(sub: ServerCommand, args: string[], v: Values): Promise<number> {
  for (const k of ["fleet", "report", "serial", "asset-tag", "uuid", "mac"] as const)
    if (v[k] !== undefined) throw new UsageError(`--${k} is for fleet answer|explain, not fleet ${sub}`);
  if (sub === "nodes") {
    if (args.length) throw new UsageError(`fleet nodes takes no arguments (got "${args[0]}")`);
  } else {
    if (args.length !== 1 || !args[0])
      throw new UsageError(`fleet ${sub} needs one NODE (an id, a MAC or a name)`);
    if (!NODE_REF.test(args[0]))
      throw new UsageError(`fleet ${sub}: "${args[0]}" is not a node id, MAC or name`);
  }
  if (sub === "hold" && !v.reason) throw new UsageError("fleet hold needs --reason R");
  if (v.reason !== undefined && sub !== "hold" && sub !== "approve")
    throw new UsageError(`--reason is for fleet hold and approve, not fleet ${sub}`);
  if ((v.rack !== undefined || v.state !== undefined) && sub !== "nodes")
    throw new UsageError(`--${v.rack !== undefined ? "rack" : "state"} is for fleet nodes`);
  const client: Client = await FleetClient.connect({ server: v.server, tokenFile: v["token-file"] });
  const out = (data: unknown, text: string) =>
    process.stdout.write(v.json ? `${JSON.stringify(data, null, 2)}\n` : text);
  const ref = args[0] as string;
  switch (sub) {
    case "nodes": {
      const nodes = await client.nodes({ rack: v.rack, state: v.state });
      out({ nodes }, nodesTable(nodes));
      return EXIT.ok;
    }
    case "show": {
      const n = await client.show(ref);
      out(n, nodeText(n));
      return EXIT.ok;
    }
    case "approve": {
      const n = await client.approve(ref, v.reason);
      out(n, `node ${label(n)} approved${n.held ? `, but held: ${holdsText(n)}` : ""}\n`);
      return EXIT.ok;
    }
    case "hold": {
      const n = await client.hold(ref, v.reason as string);
      out(n, `node ${label(n)} held: ${v.reason}\n`);
      return EXIT.ok;
    }
    case "rearm": {
      const n = await client.rearm(ref);
      out(n, `node ${label(n)} re-armed: holds released; its next network boot installs again\n`);
      return EXIT.ok;
    }
  }
}

const label = (n: FleetNode) => `${n.id}${n.name ? ` (${n.name})` : ""}`;
const holdsText = (n: FleetNode) => n.holds.map((h) => `${h.source}: ${h.reason}`).join("; ");
const cut = (s: string, w: number) => (s.length > w ? `${s.slice(0, w - 1)}~` : s.padEnd(w));

/** One line a node, 80 columns: id, name, rack, first MAC, state, approved/held, answer. */
export function nodesTable(nodes: FleetNode[]): string {
  if (!nodes.length) return "no nodes yet\n";
  const head = `${"ID".padEnd(5)} ${"NAME".padEnd(14)} ${"RACK".padEnd(8)} ${"MAC".padEnd(17)} ${"STATE".padEnd(14)} ${"OK".padEnd(3)} ANSWER`;
  const rows = nodes.map(
    (n) =>
      `${cut(n.id, 5)} ${cut(n.name ?? "-", 14)} ${cut(n.rack ?? "-", 8)} ${cut(n.macs[0] ?? "-", 17)} ${cut(n.state, 14)} ${n.approved ? "yes" : "no "} ${n.answer}`,
  );
  const held = nodes.filter((n) => n.held).map((n) => `  ${cut(`${n.id}: ${holdsText(n)}`, 78).trimEnd()}`);
  return `${[head, ...rows, ...(held.length ? ["held:", ...held] : [])].join("\n")}\n`;
}

export function nodeText(n: FleetNodeDetail): string {
  const lines = [
    `node ${label(n)}: ${n.state}${n.rack ? `, rack ${n.rack}` : ""}, ${n.approved ? "approved" : "not approved"}, answer ${n.answer}`,
    `  uuid ${n.uuid ?? "-"}  serial ${n.serial ?? "-"}  asset ${n.assetTag ?? "-"}`,
    `  macs ${n.macs.join(", ") || "-"}`,
  ];
  for (const h of n.holds) lines.push(`  held (${h.source}, since ${h.since.slice(0, 19)}): ${h.reason}`);
  for (const f of n.flags) lines.push(`  flag ${f.kind}: ${f.detail}`);
  const r = n.report;
  if (r) {
    lines.push(
      `  cpu ${r.cpu.model ?? "?"} (${r.cpu.threads ?? "?"} threads), memory ${r.memoryGiB ?? "?"} GiB`,
      ...r.nics.map((x) => `  nic ${x.name ?? "-"} ${x.mac ?? "-"} ${x.driver ?? ""}`.trimEnd()),
      ...r.disks.map((d) =>
        `  disk ${d.name} ${d.sizeBytes === null ? "?" : `${(d.sizeBytes / 1e9).toFixed(0)} GB`} ${d.model ?? ""}`.trimEnd(),
      ),
    );
  } else lines.push("  no report yet");
  lines.push(n.timeline.length ? "timeline:" : "timeline: empty");
  for (const t of n.timeline.slice(-40))
    lines.push(
      `  ${t.time.slice(0, 19).replace("T", " ")}  ${cut(t.state, 14)} ${t.detail}`.slice(0, 80).trimEnd(),
    );
  return `${lines.join("\n")}\n`;
}
