// The shapes every safety and consistency rule shares. A rule is a pure function of the answer, the
// host report and the options; it returns findings, never throws, and decides nothing the planner or
// the TUI decides again: they read the findings.
import type { HostReport } from "../../detect/types.js";
import type { Answer } from "../schema.js";
import type { Facts } from "./facts.js";

export type Level = "error" | "warning";

export interface Finding {
  /** Which rule said so, e.g. passthrough.only-gpu: stable, for tests and for --json consumers. */
  ruleId: string;
  /** Key path in the answer file, e.g. passthrough[0].device. */
  path: string;
  level: Level;
  message: string;
  /** What the operator can do about it, or null when the message says it already. */
  remediation: string | null;
}

export interface RuleInput {
  answer: Answer;
  report: HostReport;
  /** Matches and host facts computed once per run and shared by the rules. */
  facts: Facts;
}

export interface Rule {
  id: string;
  /** One line: what the rule protects against (listed by explain and in the docs). */
  summary: string;
  check: (input: RuleInput) => Finding[];
}

/** A rule whose findings all carry its id. */
export function rule(id: string, summary: string, check: (input: RuleInput, emit: Emit) => void): Rule {
  return {
    id,
    summary,
    check: (input) => {
      const out: Finding[] = [];
      check(input, {
        error: (path, message, remediation = null) =>
          out.push({ ruleId: id, path, level: "error", message, remediation }),
        warning: (path, message, remediation = null) =>
          out.push({ ruleId: id, path, level: "warning", message, remediation }),
      });
      return out;
    },
  };
}

export interface Emit {
  error: (path: string, message: string, remediation?: string | null) => void;
  warning: (path: string, message: string, remediation?: string | null) => void;
}
