// `kvmstrap answer explain`: for every match rule in the file, every candidate and why it matched or
// not, what the rule chose, and what the rule set (./rules) says about that choice: the same
// findings validate reports and plan refuses. Plain ASCII text (serial consoles); data for --json.
import type { HostReport } from "../detect/types.js";
import { diskLabel, type MatchResult, matchDisks, matchNics, matchPci, nicLabel, pciLabel } from "./match.js";
import { collectRules, type MatchRule } from "./match-rules.js";
import { type Finding, runRules } from "./rules/index.js";
import type { Answer } from "./schema.js";

export interface RuleExplanation {
  path: string;
  kind: MatchRule["kind"];
  rule: MatchRule["rule"];
  candidates: { label: string; matched: boolean; reasons: string[] }[];
  chosen: string[];
  error: string | null;
  /** The rule set's findings about this choice (the match error itself is `error`). */
  findings: Pick<Finding, "ruleId" | "level" | "message">[];
}

function explainRule(r: MatchRule, report: HostReport): RuleExplanation {
  const shape = <T>(m: MatchResult<T>, label: (t: T) => string): RuleExplanation => ({
    path: r.path,
    kind: r.kind,
    rule: r.rule,
    candidates: m.candidates.map(({ label, matched, reasons }) => ({ label, matched, reasons })),
    chosen: m.chosen.map(label),
    error: m.error,
    findings: [],
  });
  if (r.kind === "nic") return shape(matchNics(r.rule, report), nicLabel);
  if (r.kind === "disk") return shape(matchDisks(r.rule, report), diskLabel);
  return shape(matchPci(r.rule, report), pciLabel);
}

export function explainAnswerData(answer: Answer, report: HostReport): RuleExplanation[] {
  const findings = runRules(answer, report).filter((f) => !f.ruleId.startsWith("match."));
  return collectRules(answer).map((r) => ({
    ...explainRule(r, report),
    findings: findings
      .filter((f) => f.path === r.path)
      .map(({ ruleId, level, message }) => ({ ruleId, level, message })),
  }));
}

const ruleText = (rule: object) =>
  Object.entries(rule)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ") || "(no criteria)";

export function explainAnswer(answer: Answer, report: HostReport): string {
  const data = explainAnswerData(answer, report);
  if (!data.length) return "The answer file has no match rules.\n";
  const blocks = data.map((e) => {
    const lines = [`${e.path} (${e.kind}: ${ruleText(e.rule)})`];
    if (!e.candidates.length) lines.push("  no candidates on this host");
    for (const c of e.candidates) {
      lines.push(`  ${c.matched ? "+" : "-"} ${c.label}`);
      for (const reason of c.reasons) lines.push(`      ${reason}`);
    }
    if (e.error) {
      const head = (e.error.split("\n")[0] ?? "").replace(/; candidates:$/, "");
      lines.push(`  => error: ${head}`);
    } else {
      lines.push(`  => ${e.chosen.join(", ")}`);
    }
    for (const f of e.findings) lines.push(`  ! ${f.level} (${f.ruleId}): ${f.message}`);
    return lines.join("\n");
  });
  return `${blocks.join("\n\n")}\n`;
}
