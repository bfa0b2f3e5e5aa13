// Prepare: detect the machine, load the answer, validate it with the one rule set, read the current
// content of every file the plan touches, and plan. `answer validate`, `plan`, `apply` and the
// TUI's Review all go through here, so they cannot see different hosts, different template
// directories or different rules.
import path from "node:path";
import { type AnswerIssue, type AnswerSource, readAnswerSource } from "../answer/load.js";
import { parsePath } from "../answer/positions.js";
import type { Answer } from "../answer/schema.js";
import { type Issue, type ValidationResult, validateAnswer } from "../answer/validate.js";
import type { HostReport } from "../detect/types.js";
import type { HostFs } from "../host/fs.js";
import type { Plan } from "../plan/actions.js";
import { buildPlan, planFiles } from "../plan/index.js";
import { detectMachine, type ProbeMode } from "./inspect.js";
import { type MachineSource, withMachine } from "./machine.js";

export interface PrepareOptions {
  /** Where relative paths in the answer (a VM's template) start: the answer file's directory. */
  baseDir: string;
}

export interface Prepared {
  report: HostReport;
  answer: Answer;
  validation: ValidationResult;
  plan: Plan;
}

/** The answer's directory, against which its relative paths resolve (cwd for an answer built in the TUI). */
export const baseDirOf = (answerFile: string | null): string =>
  answerFile ? path.dirname(path.resolve(answerFile)) : process.cwd();

/** Validate and plan an answer already in memory (the TUI's draft, a server's per-node answer). */
export async function prepareAnswer(
  fs: HostFs,
  report: HostReport,
  answer: Answer,
  options: PrepareOptions,
): Promise<Prepared> {
  // The rule set runs once: the dry plan (which files to read) and the plan take its findings.
  const validation = validateAnswer(answer, report, options);
  const planOptions = { baseDir: options.baseDir, findings: validation.findings };
  const paths = planFiles(report, answer, planOptions);
  const texts = await Promise.all(paths.map((p) => fs.readText(p)));
  const current = new Map(paths.map((p, i) => [p, texts[i] ?? null]));
  return { report, answer, validation, plan: buildPlan(report, answer, current, planOptions) };
}

/** Detect the machine, load the answer file, validate and plan it. Relative paths start at the file. */
export async function prepareFile(
  file: string,
  source: MachineSource,
  o: { probe?: ProbeMode } = {},
): Promise<Prepared> {
  const { loadAnswerFile } = await import("../answer/load.js");
  return withMachine(source, async (machine) => {
    const [answer, report] = await Promise.all([
      loadAnswerFile(file),
      detectMachine(machine, { mode: o.probe ?? "auto" }),
    ]);
    return prepareAnswer(machine.fs, report, answer, { baseDir: baseDirOf(file) });
  });
}

/** Read an answer file with its source map (for file:line:col locations); AnswerError when malformed. */
export const readAnswer = (file: string): Promise<AnswerSource> => readAnswerSource(file);

/** A validation issue with the file, line and column of its key. */
export function locateIssue(source: AnswerSource, issue: Issue): AnswerIssue {
  const pos = source.map.locate(parsePath(issue.path));
  return { file: source.file, line: pos?.line ?? null, column: pos?.column ?? null, ...issue };
}

/**
 * Why this prepared answer must not be applied: validation errors and plan refusals, one line each
 * with the answer path. Both come from the same rules; a refusal not already reported as an error
 * is listed too, so nothing the plan skipped goes unsaid.
 */
export function blockers(p: Prepared): string[] {
  const lines = p.validation.errors.map((e) => `${e.path}: ${e.message}`);
  const seen = new Set(lines);
  for (const r of p.plan.refusals) {
    const line = `${r.path}: ${r.reason}`;
    if (!seen.has(line)) lines.push(line);
  }
  return lines;
}
