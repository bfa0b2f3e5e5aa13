// One node's answer: assign it (rack, roles), merge its layers with provenance, check the merged
// answer with the answer schema and the one rule set against the node's own report (src/answer), and
// hold it with every reason located in the layer file that set the key. Pure apart from the rule
// set's one filesystem check (a VM's template directory, relative to the fleet directory).
import { AnswerError, checkSchema } from "../../answer/load.js";
import { formatPath, parsePath } from "../../answer/positions.js";
import { type Answer, answerSchema } from "../../answer/schema.js";
import { validateAnswer } from "../../answer/validate.js";
import { type Assignment, assignNode } from "./assign.js";
import type { Fleet } from "./files.js";
import { blame, type LayerFile, type Merged, mergeLayers, type Removal, type Setting } from "./merge.js";
import { type HoldReason, type Layer, layerLabel, type NodeFacts, type Origin } from "./types.js";

export interface Value extends Origin {
  path: string;
  value: unknown;
  shadowed: Setting["shadowed"];
}

export interface NodeAnswer {
  node: string;
  rack: string | null;
  roles: string[];
  status: "ready" | "held";
  /** The layers merged, in order. */
  layers: Layer[];
  assignment: Assignment["trace"];
  /** The merged answer as the layers wrote it (before the schema's defaults). */
  data: Record<string, unknown>;
  /** The schema-checked answer (defaults filled in); null when the schema refused the merge. */
  answer: Answer | null;
  /** Every value of the merged answer, in document order, with the layer and line that set it. */
  values: Value[];
  removed: Removal[];
  holds: HoldReason[];
  warnings: HoldReason[];
}

export const NO_REPORT = "no report captured yet: the answer cannot be checked against this node's hardware";

export function resolveNode(fleet: Fleet, facts: NodeFacts): NodeAnswer {
  const a = assignNode(fleet.assign, facts);
  const layers: Layer[] = [{ kind: "site", name: "site", file: fleet.site.file }];
  const files: LayerFile[] = [{ label: "site", file: fleet.site }];
  const add = (kind: Layer["kind"], name: string, file: Fleet["site"] | undefined) => {
    if (!file) return;
    layers.push({ kind, name, file: file.file });
    files.push({ label: layerLabel({ kind, name }), file });
  };
  if (a.rack) add("rack", a.rack, fleet.racks.get(a.rack));
  for (const role of a.roles) add("role", role, fleet.roles.get(role));
  add("node", facts.name, fleet.nodes.get(facts.name));
  const merged = mergeLayers(files);

  const holds = [...a.holds];
  const warnings: HoldReason[] = [];
  const at = (path: string, message: string, ruleId: string | null): HoldReason => {
    const segs = parsePath(path);
    const pos = merged.locator.locate(segs);
    return {
      file: pos?.file ?? fleet.site.file,
      line: pos?.line ?? null,
      column: pos?.column ?? null,
      path,
      layer: originOf(merged, path)?.layer ?? null,
      message,
      ruleId,
    };
  };
  let answer: Answer | null = null;
  try {
    answer = checkSchema(answerSchema, merged.data, fleet.site.file, merged.locator);
  } catch (e) {
    if (!(e instanceof AnswerError)) throw e;
    for (const i of e.issues)
      holds.push({ ...i, layer: originOf(merged, i.path)?.layer ?? null, ruleId: "schema" });
  }
  const report = facts.report ?? null;
  if (!report)
    holds.push({
      file: "(report)",
      line: null,
      column: null,
      path: "",
      layer: null,
      message: NO_REPORT,
      ruleId: null,
    });
  else if (answer) {
    const v = validateAnswer(answer, report, { baseDir: fleet.dir });
    for (const f of v.findings)
      (f.level === "error" ? holds : warnings).push(at(f.path, f.message, f.ruleId));
  }
  return {
    node: facts.name,
    rack: a.rack,
    roles: a.roles,
    status: holds.length ? "held" : "ready",
    layers,
    assignment: a.trace,
    data: merged.data,
    answer,
    values: leaves(merged),
    removed: merged.removed,
    holds,
    warnings,
  };
}

/** The origin to blame for a problem at `path` (merge.ts). */
const originOf = (m: Merged, path: string): Setting | null => blame(m.origins, parsePath(path));

function leaves(m: Merged): Value[] {
  const out: Value[] = [];
  const walk = (v: unknown, path: (string | number)[]) => {
    // A list or mapping that replaced an earlier one whole is listed too, with what it replaced.
    const own = m.origins.get(formatPath(path));
    if (own?.shadowed.length && v !== null && typeof v === "object")
      out.push({
        path: formatPath(path),
        value: v,
        layer: own.layer,
        file: own.file,
        line: own.line,
        column: own.column,
        shadowed: own.shadowed,
      });
    if (Array.isArray(v) && v.length)
      v.forEach((x, i) => {
        walk(x, [...path, i]);
      });
    else if (v !== null && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length)
      for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    else {
      const key = formatPath(path);
      const o = m.origins.get(key);
      if (o)
        out.push({
          path: key,
          value: v,
          layer: o.layer,
          file: o.file,
          line: o.line,
          column: o.column,
          shadowed: o.shadowed,
        });
    }
  };
  walk(m.data, []);
  return out;
}

export interface KeyExplanation {
  node: string;
  key: string;
  layers: Layer[];
  /** The values under the key, each with the layer that set it and the ones it replaced. */
  values: Value[];
  /** Keys under it that a later layer removed (key: null). */
  removed: Removal[];
}

const under = (key: string) => (p: string) =>
  key === "" || p === key || p.startsWith(`${key}.`) || p.startsWith(`${key}[`);

/** Which layer set each value under `key` (network.bridges, host.users[0]...). */
export function explainKey(a: NodeAnswer, key: string): KeyExplanation {
  const k = formatPath(parsePath(key));
  return {
    node: a.node,
    key: k,
    layers: a.layers,
    values: a.values.filter((v) => under(k)(v.path)),
    removed: a.removed.filter((r) => under(k)(r.path)),
  };
}
