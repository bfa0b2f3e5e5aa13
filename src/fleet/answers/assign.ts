// assign.yaml: which rack and roles a node gets, by what is known of it. A rule matches on the node's
// identity (name, rack, MAC, DMI serial, asset tag, UUID, product, vendor) and on hardware facts of
// its report: NUMA nodes, memory, and the answer file's own NIC, PCI and disk match rules (the same
// grammar and matcher as an answer's, src/answer/match.ts: one definition of "an Intel I350").
// Every rule that matches applies, in file order: the first that sets a rack sets it, roles add up,
// any hold holds. Each rule's trace says why it matched or not, criterion by criterion.
import { z } from "zod";
import { AnswerError, checkSchema } from "../../answer/load.js";
import { globMatch, matchDisks, matchNics, matchPci } from "../../answer/match.js";
import { diskMatch, nicMatch, pciMatch } from "../../answer/schema.js";
import { MAC, OBJECT_NAME } from "../../core/grammar.js";
import type { HostReport } from "../../detect/types.js";
import type { FleetFile } from "./files.js";
import type { HoldReason, NodeFacts } from "./types.js";

const objectName = z
  .string()
  .regex(OBJECT_NAME.pattern, { message: OBJECT_NAME.describe, abort: true })
  .refine(OBJECT_NAME.test, { message: OBJECT_NAME.describe });
const glob = z.string().min(1).describe("a value or a glob with * and ? (case ignored)");

const matchSchema = z.strictObject({
  name: glob.optional().describe("the node's name"),
  rack: glob.optional().describe("the rack the node boots in"),
  mac: z.string().regex(MAC.pattern, MAC.describe).optional().describe("one of the node's MACs"),
  serial: glob.optional().describe("DMI system serial number"),
  assetTag: glob.optional().describe("DMI asset tag"),
  uuid: z.string().min(1).optional().describe("DMI system UUID"),
  product: glob.optional().describe("DMI system product name"),
  vendor: glob.optional().describe("DMI system vendor"),
  numaNodes: z.number().int().positive().optional().describe("exactly this many NUMA nodes"),
  minMemoryGiB: z.number().positive().optional(),
  nic: nicMatch.optional().describe("some NIC matches this (an answer's NIC match rule)"),
  pci: pciMatch.optional().describe("some PCI device matches this (id: 8086:1521 is an I350)"),
  disk: diskMatch.optional().describe("some disk matches this"),
});

const ruleSchema = z.strictObject({
  description: z.string().optional(),
  match: matchSchema,
  rack: objectName.optional().describe("the node's rack: racks/RACK.yaml is its rack layer"),
  roles: z.array(objectName).default([]).describe("roles/ROLE.yaml layers, between rack and node"),
  hold: z.string().min(1).optional().describe("hold matching nodes, with this reason"),
});

const assignSchema = z.strictObject({ version: z.literal(1), rules: z.array(ruleSchema).default([]) });

export type Match = z.infer<typeof matchSchema>;
type Place = { line: number | null; column: number | null; path: string };
export interface Rule extends z.infer<typeof ruleSchema>, Place {
  index: number;
}
export interface AssignRules {
  file: string;
  rules: (Omit<Rule, "roles"> & {
    roles: ({ name: string } & Place)[];
    keys: Record<"rack" | "hold", Place>;
  })[];
}

export function parseAssign(f: FleetFile): AssignRules {
  if (f.data.version !== 1) {
    const pos = f.map.locate(["version"]);
    throw new AnswerError([
      {
        file: f.file,
        line: pos?.line ?? null,
        column: pos?.column ?? null,
        path: "version",
        message:
          f.data.version === undefined
            ? 'missing required key "version": assign.yaml starts with version: 1'
            : "unsupported version: this kvmstrap reads assign.yaml with version: 1",
      },
    ]);
  }
  const parsed = checkSchema(assignSchema, f.data, f.file, f.map);
  return {
    file: f.file,
    rules: parsed.rules.map((r, index) => {
      const pos = f.map.locate(["rules", index]);
      return {
        ...r,
        index,
        line: pos?.line ?? null,
        column: pos?.column ?? null,
        path: `rules[${index}]`,
        keys: { rack: placeOf(f, index, "rack"), hold: placeOf(f, index, "hold") },
        roles: r.roles.map((name, j) => {
          const at = f.map.locate(["rules", index, "roles", j]);
          return {
            name,
            line: at?.line ?? null,
            column: at?.column ?? null,
            path: `rules[${index}].roles[${j}]`,
          };
        }),
      };
    }),
  };
}

function placeOf(f: FleetFile, index: number, key: string): Place {
  const at = f.map.locate(["rules", index, key]);
  return { line: at?.line ?? null, column: at?.column ?? null, path: `rules[${index}].${key}` };
}

/** unknown: a criterion needs the node's report and there is none yet. */
type Verdict = boolean | "unknown";
type Check = [Verdict, string];

export interface RuleTrace {
  index: number;
  line: number | null;
  description: string | null;
  matched: Verdict;
  /** One per criterion, held or not. */
  reasons: string[];
  rack: string | null;
  roles: string[];
  hold: string | null;
}

export interface Assignment {
  rack: string | null;
  /** Where the rack came from: the server the node booted through, or a rule (its line). */
  rackFrom: "boot" | { line: number | null } | null;
  roles: string[];
  holds: HoldReason[];
  trace: RuleTrace[];
}

const text = (value: string | null | undefined) => (value ?? "").trim();

function globCheck(what: string, pattern: string, value: string | null | undefined): Check {
  const v = text(value);
  if (!v) return [false, `${what} unknown`];
  return globMatch(pattern, v, true)
    ? [true, `${what} "${v}" matches ${pattern}`]
    : [false, `${what} "${v}" does not match ${pattern}`];
}

/** Some candidate matched: the answer matcher's reasons for the nearest ones say why or why not. */
function anyMatch(
  what: string,
  result: { candidates: { label: string; matched: boolean; failed: string[] }[] },
): Check {
  const hit = result.candidates.find((c) => c.matched);
  if (hit) return [true, `${what} ${hit.label} matches`];
  const near = [...result.candidates].sort((a, b) => a.failed.length - b.failed.length)[0];
  return [
    false,
    near ? `no ${what} matches (nearest ${near.label}: ${near.failed.join("; ")})` : `no ${what}s`,
  ];
}

function checks(m: Match, facts: NodeFacts, report: HostReport | null): Check[] {
  const c: Check[] = [];
  const needReport = (what: string, f: (r: HostReport) => Check): Check =>
    report ? f(report) : ["unknown", `${what}: no report captured yet`];
  if (m.name !== undefined) c.push(globCheck("name", m.name, facts.name));
  if (m.rack !== undefined) c.push(globCheck("rack", m.rack, facts.rack));
  if (m.serial !== undefined) c.push(globCheck("serial", m.serial, facts.serial));
  if (m.assetTag !== undefined) c.push(globCheck("asset tag", m.assetTag, facts.assetTag));
  if (m.uuid !== undefined) {
    const u = text(facts.uuid).toLowerCase();
    const want = m.uuid.trim().toLowerCase();
    c.push(!u ? [false, "UUID unknown"] : [u === want, `UUID ${u} ${u === want ? "==" : "!="} ${want}`]);
  }
  const dmi = (what: "product" | "vendor", pattern: string) => {
    if (facts[what] !== undefined && facts[what] !== null) return globCheck(what, pattern, facts[what]);
    return needReport(what, (r) => globCheck(what, pattern, r.firmware.system[what]));
  };
  if (m.product !== undefined) c.push(dmi("product", m.product));
  if (m.vendor !== undefined) c.push(dmi("vendor", m.vendor));
  if (m.mac !== undefined) {
    const want = m.mac.toLowerCase();
    const has = (macs: readonly string[]): Check =>
      macs.some((x) => x.toLowerCase() === want)
        ? [true, `has MAC ${want}`]
        : [false, `no NIC has MAC ${want}`];
    c.push(
      facts.macs
        ? has(facts.macs)
        : needReport("MAC", (r) => has(r.nics.flatMap((n) => (n.mac ? [n.mac] : [])))),
    );
  }
  if (m.numaNodes !== undefined) {
    const want = m.numaNodes;
    c.push(
      needReport("NUMA nodes", (r) => {
        const n = r.memory.numa.length;
        return n === 0
          ? [false, "NUMA nodes unknown"]
          : [n === want, `${n} NUMA node(s), numaNodes ${n === want ? "==" : "!="} ${want}`];
      }),
    );
  }
  if (m.minMemoryGiB !== undefined) {
    const want = m.minMemoryGiB;
    c.push(
      needReport("memory", (r) => {
        const kib = r.memory.totalKiB;
        if (kib === null) return [false, "memory size unknown"];
        const gib = kib / 1024 ** 2;
        return [gib >= want, `${gib.toFixed(1)} GiB ${gib >= want ? ">=" : "<"} minMemoryGiB ${want}`];
      }),
    );
  }
  if (m.nic !== undefined) {
    const rule = m.nic;
    c.push(needReport("NIC", (r) => anyMatch("NIC", matchNics(rule, r))));
  }
  if (m.pci !== undefined) {
    const rule = m.pci;
    c.push(needReport("PCI device", (r) => anyMatch("PCI device", matchPci(rule, r))));
  }
  if (m.disk !== undefined) {
    const rule = m.disk;
    c.push(needReport("disk", (r) => anyMatch("disk", matchDisks(rule, r))));
  }
  return c;
}

function verdictOf(c: Check[]): Verdict {
  if (c.some(([v]) => v === false)) return false;
  return c.some(([v]) => v === "unknown") ? "unknown" : true;
}

export function assignNode(rules: AssignRules, facts: NodeFacts): Assignment {
  const report = facts.report ?? null;
  const booted = facts.rack ?? null;
  const out: Assignment = { rack: booted, rackFrom: booted ? "boot" : null, roles: [], holds: [], trace: [] };
  const hold = (at: Place, message: string): void => {
    out.holds.push({ file: rules.file, ...at, layer: null, message, ruleId: "assign" });
  };
  for (const r of rules.rules) {
    const c = checks(r.match, facts, report);
    const matched = verdictOf(c);
    out.trace.push({
      index: r.index,
      line: r.line,
      description: r.description ?? null,
      matched,
      reasons: c.length ? c.map(([, reason]) => reason) : ["no criteria: every node matches"],
      rack: r.rack ?? null,
      roles: r.roles.map((x) => x.name),
      hold: r.hold ?? null,
    });
    if (matched !== true) continue;
    if (r.rack !== undefined) {
      if (out.rack === null) {
        out.rack = r.rack;
        out.rackFrom = { line: r.line };
      } else if (out.rack !== r.rack && out.rackFrom === "boot") {
        hold(r.keys.rack, `this rule puts the node in rack ${r.rack}, but it boots in rack ${out.rack}`);
      }
    }
    for (const role of r.roles) if (!out.roles.includes(role.name)) out.roles.push(role.name);
    if (r.hold !== undefined) hold(r.keys.hold, `held by assign.yaml: ${r.hold}`);
  }
  return out;
}
