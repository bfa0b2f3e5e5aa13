// Text for people: a node's merged answer as YAML with the origin of each value as a comment, the
// assignment trace, the hold reasons, and `explain` for one key. Plain ASCII (serial consoles).
import { Document, isMap, isPair, isScalar, isSeq } from "yaml";
import { formatPath, type PathSegment } from "../../answer/positions.js";
import type { KeyExplanation, NodeAnswer } from "./resolve.js";
import { formatHold, layerLabel, type Origin } from "./types.js";

const where = (o: Origin) => (o.line !== null ? `${o.file}:${o.line}` : o.file);
const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));

/** The merged answer as YAML; each value carries "# LAYER FILE:LINE" (a valid answer file still). */
export function answerYaml(a: NodeAnswer): string {
  const byPath = new Map(a.values.map((v) => [v.path, v]));
  const doc = new Document(a.data);
  const walk = (node: unknown, path: PathSegment[]): void => {
    if (isMap(node)) {
      for (const pair of node.items)
        if (isPair(pair) && isScalar(pair.key)) walk(pair.value, [...path, String(pair.key.value)]);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        walk(item, [...path, i]);
      });
    } else if (isScalar(node)) {
      const v = byPath.get(formatPath(path));
      if (v) node.comment = ` ${v.layer} ${where(v)}`;
    }
  };
  walk(doc.contents, []);
  return doc.toString({ lineWidth: 0 });
}

export function answerText(a: NodeAnswer): string {
  const lines = [
    `node ${a.node}: ${a.status}${a.rack ? `, rack ${a.rack}` : ", no rack"}${a.roles.length ? `, roles ${a.roles.join(", ")}` : ""}`,
    `layers: ${a.layers.map((l) => `${layerLabel(l)} (${l.file})`).join(", ")}`,
  ];
  if (a.assignment.length) lines.push("assign.yaml:");
  for (const t of a.assignment) {
    const mark = t.matched === true ? "+" : t.matched === false ? "-" : "?";
    const sets = [
      t.rack && `rack ${t.rack}`,
      t.roles.length && `roles ${t.roles.join(", ")}`,
      t.hold && `hold`,
    ].filter(Boolean);
    lines.push(
      `  ${mark} rules[${t.index}]${t.line !== null ? ` (line ${t.line})` : ""}${t.description ? ` ${t.description}` : ""}${sets.length ? ` -> ${sets.join("; ")}` : ""}`,
    );
    for (const r of t.reasons) lines.push(`      ${r}`);
  }
  lines.push("", answerYaml(a).trimEnd(), "");
  if (a.holds.length) lines.push(`held (${a.holds.length}):`, ...a.holds.map((h) => `  ${formatHold(h)}`));
  if (a.warnings.length)
    lines.push(`warnings (${a.warnings.length}):`, ...a.warnings.map((h) => `  ${formatHold(h)}`));
  return `${lines.join("\n")}\n`;
}

export function explainText(e: KeyExplanation): string {
  const lines = [
    `${e.node} ${e.key || "(whole answer)"}: layers ${e.layers.map((l) => `${layerLabel(l)} (${l.file})`).join(", ")}`,
  ];
  if (!e.values.length && !e.removed.length) lines.push("  no layer sets this key");
  for (const v of e.values) {
    lines.push(`  ${v.path} = ${show(v.value)}`);
    lines.push(`      set by ${v.layer} at ${where(v)}`);
    for (const s of [...v.shadowed].reverse())
      lines.push(`      over ${s.layer} at ${where(s)}: ${show(s.value)}`);
  }
  for (const r of e.removed)
    lines.push(`  ${r.path} removed by ${r.layer} at ${where(r)} (was ${show(r.value)})`);
  return `${lines.join("\n")}\n`;
}
