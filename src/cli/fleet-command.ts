// `kvmstrap fleet answer|explain`: a node's layered answer from a fleet directory, offline. The
// server-backed commands (nodes, show, approve, hold, rearm, rollout) join this table once
// `kvmstrap serve` keeps fleet state; until then the help lists only what exists.
import {
  answerText,
  explainText,
  type FleetNodeQuery,
  fleetExplain,
  fleetNodeAnswer,
} from "../app/fleet-answer.js";
import { HOSTNAME, MAC, OBJECT_NAME } from "../core/grammar.js";
import { readReport } from "./answer-command.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const FLEET_HELP = `Usage: kvmstrap fleet <answer|explain> NODE [KEY] --fleet DIR [options]

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
  --json             Print the result as JSON
  -h, --help         Print this help

A bad fleet file exits 2 with file:line:col: key: message for every problem.
`;

export const FLEET_OPTIONS = {
  fleet: { type: "string" },
  report: { type: "string" },
  rack: { type: "string" },
  serial: { type: "string" },
  "asset-tag": { type: "string" },
  uuid: { type: "string" },
  mac: { type: "string", multiple: true },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function fleetCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, FLEET_OPTIONS);
  const [sub, node, key, extra] = positionals;
  if (values.help || sub === "help") {
    process.stdout.write(FLEET_HELP);
    return EXIT.ok;
  }
  if (sub !== "answer" && sub !== "explain")
    throw new UsageError(
      sub ? `unknown fleet subcommand "${sub}"` : "fleet needs a subcommand: answer or explain",
    );
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
