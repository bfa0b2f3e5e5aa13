// `kvmstrap answer validate|explain|schema`: check an answer file offline against a snapshot, a saved
// report or this host; explain its match rules; print its JSON Schema. Malformed files and semantic
// errors both exit 2 with one file:line:col: path: message line per problem.
import { readFile } from "node:fs/promises";
import { explainAnswer, explainAnswerData } from "../answer/explain.js";
import {
  AnswerError,
  type AnswerIssue,
  type AnswerSource,
  formatIssue,
  readAnswerSource,
} from "../answer/load.js";
import type { Finding } from "../answer/rules/index.js";
import { answerJsonSchema } from "../answer/schema.js";
import { validateAnswer } from "../answer/validate.js";
import { baseDirOf, locateIssue } from "../app/prepare.js";
import { HOST_REPORT_SCHEMA, type HostReport, hostReport as hostReportSchema } from "../detect/types.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";

export const ANSWER_HELP = `Usage: kvmstrap answer <validate|explain|schema> [FILE] [options]

  validate FILE   Check an answer file: YAML syntax, the schema, then the hardware (every match rule
                  matches one device; no unsafe passthrough, SR-IOV or wipe). Exit 0 when valid
                  (warnings are printed), 2 when the file is malformed or has errors.
  explain FILE    For every match rule, list each candidate device and why it matched or not.
  schema          Print the answer file's JSON Schema (for editors and yaml-language-server).

Options (validate, explain):
  --root DIR       Check against an extracted snapshot or machine root instead of this host
  --snapshot FILE  Check against a snapshot made by "kvmstrap snapshot" (FILE.tar.gz)
  --report FILE    Check against a report saved by "kvmstrap detect --json"
  --json           Print the result as JSON
  -h, --help       Print this help

Without --root, --snapshot or --report the answer file is checked against this host.
`;

export const ANSWER_OPTIONS = {
  root: { type: "string" },
  snapshot: { type: "string" },
  report: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function answerCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, ANSWER_OPTIONS);
  const [sub, file, extra] = positionals;
  if (values.help || sub === "help") {
    process.stdout.write(ANSWER_HELP);
    return EXIT.ok;
  }
  if (sub === "schema") {
    if (file) throw new UsageError(`answer schema takes no arguments (got "${file}")`);
    process.stdout.write(`${JSON.stringify(answerJsonSchema(), null, 2)}\n`);
    return EXIT.ok;
  }
  if (sub !== "validate" && sub !== "explain") {
    throw new UsageError(
      sub ? `unknown answer subcommand "${sub}"` : "answer needs a subcommand: validate, explain or schema",
    );
  }
  if (!file) throw new UsageError(`answer ${sub} needs an answer file`);
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const sources = [values.root, values.snapshot, values.report].filter((v) => v !== undefined);
  if (sources.length > 1) throw new UsageError("--root, --snapshot and --report cannot be combined");

  let source: AnswerSource;
  try {
    source = await readAnswerSource(file);
  } catch (e) {
    if (!(e instanceof AnswerError)) throw e;
    return printIssues(e.issues, [], file, Boolean(values.json));
  }
  const report = await hostReport(values);
  if (sub === "explain") {
    process.stdout.write(
      values.json
        ? `${JSON.stringify({ file, rules: explainAnswerData(source.answer, report) }, null, 2)}\n`
        : explainAnswer(source.answer, report),
    );
    return EXIT.ok;
  }
  const result = validateAnswer(source.answer, report, { baseDir: baseDirOf(file) });
  // Findings carry their rule id and remediation; --json passes them on, the text adds the fix.
  const place = (level: Finding["level"]) =>
    result.findings.filter((f) => f.level === level).map((f) => locateIssue(source, f));
  return printIssues(place("error"), place("warning"), file, Boolean(values.json));
}

type Located = AnswerIssue & { ruleId?: string; remediation?: string | null };

function printIssues(errors: Located[], warnings: Located[], file: string, json: boolean): number {
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ file, valid: errors.length === 0, errors, warnings }, null, 2)}\n`,
    );
  } else {
    const fix = (i: Located) => (i.remediation ? `\n  fix: ${i.remediation}` : "");
    for (const e of errors) process.stderr.write(`${formatIssue(e)}${fix(e)}\n`);
    for (const w of warnings)
      process.stderr.write(`${formatIssue({ ...w, message: `warning: ${w.message}` })}${fix(w)}\n`);
    const counts = `${errors.length} error${errors.length === 1 ? "" : "s"}, ${warnings.length} warning${warnings.length === 1 ? "" : "s"}`;
    if (errors.length) process.stderr.write(`kvmstrap: ${file}: invalid (${counts})\n`);
    else process.stdout.write(`${file}: valid (${counts})\n`);
  }
  return errors.length ? EXIT.usage : EXIT.ok;
}

async function hostReport(values: {
  root?: string;
  snapshot?: string;
  report?: string;
}): Promise<HostReport> {
  if (values.report) return readReport(values.report);
  const [{ detectMachine }, { withMachine }] = await Promise.all([
    import("../app/inspect.js"),
    import("../app/machine.js"),
  ]);
  return withMachine(values, (machine) => detectMachine(machine, { mode: "never" }));
}

/** A report from `kvmstrap detect --json`: the whole {report, checks, verdict} object or the bare report. */
export async function readReport(file: string): Promise<HostReport> {
  let data: unknown;
  try {
    data = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(
      `--report ${file}: ${code === "ENOENT" ? "no such file" : code ? `cannot read (${code})` : `not JSON (${(e as Error).message})`}`,
    );
  }
  const wrapped = (data as { report?: unknown } | null)?.report;
  const candidate = typeof wrapped === "object" && wrapped !== null ? wrapped : data;
  if ((candidate as { schema?: unknown } | null)?.schema !== HOST_REPORT_SCHEMA) {
    throw new InputError(
      `--report ${file}: not a kvmstrap host report (write one with "kvmstrap detect --json")`,
    );
  }
  const parsed = hostReportSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? issue.path.join(".") : "report";
    throw new InputError(`--report ${file}: ${where}: ${issue?.message ?? "not a valid host report"}`);
  }
  return parsed.data;
}
