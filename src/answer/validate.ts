// Semantic validation: a schema-valid answer file checked against one machine's host report. The
// rules are the one rule set in ./rules (the plan and the TUI run the same); this adds the one check
// that reads the filesystem (a VM's cloud-init template directory) and splits findings by level.
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import type { HostReport } from "../detect/types.js";
import { DEFAULT_TEMPLATE_DIR } from "../vm/cloud-init.js";
import { deploysHere } from "./rules/cluster.js";
import { type Finding, runRules } from "./rules/index.js";
import type { Answer, VmEntry } from "./schema.js";

export type { Finding } from "./rules/index.js";
export { sriovEntryFor } from "./rules/index.js";

export interface Issue {
  /** Key path in the answer file, e.g. network.bridges[0].uplink. */
  path: string;
  message: string;
}

export interface ValidateOptions {
  /** Where relative paths in the file (a VM's template) start: the answer file's directory (default: cwd). */
  baseDir?: string;
}

export interface ValidationResult {
  errors: Issue[];
  warnings: Issue[];
}

export interface Validation extends ValidationResult {
  /** Every finding with its rule id, level and remediation (errors and warnings are views of it). */
  findings: Finding[];
}

const issue = (f: Finding): Issue => ({ path: f.path, message: f.message });

export function validateAnswer(
  answer: Answer,
  report: HostReport,
  options: ValidateOptions = {},
): Validation {
  return splitFindings([...runRules(answer, report), ...templateFindings(answer, report, options.baseDir)]);
}

const splitFindings = (findings: Finding[]): Validation => ({
  errors: findings.filter((f) => f.level === "error").map(issue),
  warnings: findings.filter((f) => f.level === "warning").map(issue),
  findings,
});

// ---- VMs ----------------------------------------------------------------------------------------

const TEMPLATE_FILES = ["user-data.yaml", "meta-data.yaml", "network-config.yaml"] as const;

/** The cloud-init template directory of a VM entry: its template (relative to baseDir), or the default. */
export function vmTemplateDir(vm: VmEntry, baseDir: string = process.cwd()): string {
  return vm.template === undefined ? DEFAULT_TEMPLATE_DIR : path.resolve(baseDir, vm.template);
}

function templateProblem(dir: string): string | null {
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    return `unknown template: ${dir} does not exist`;
  }
  if (!isDir) return `unknown template: ${dir} is not a directory`;
  const missing = TEMPLATE_FILES.filter((f) => !existsSync(path.join(dir, f)));
  if (missing.length) return `${dir} is not a cloud-init template directory: it has no ${missing.join(", ")}`;
  return null;
}

/** The only check that reads files, so it stays out of the pure rule set: template directories. */
function templateFindings(answer: Answer, report: HostReport, baseDir: string | undefined): Finding[] {
  return answer.vms.flatMap((vm, i): Finding[] => {
    // Another cluster member's VM: its template is read there.
    if (!deploysHere(answer, report, vm)) return [];
    const problem = templateProblem(vmTemplateDir(vm, baseDir));
    return problem
      ? [
          {
            ruleId: "vms.template",
            path: `vms[${i}].template`,
            level: "error",
            message: problem,
            remediation: null,
          },
        ]
      : [];
  });
}

/** The vms section's findings (VM rules, and the passthrough safety of VM devices), for vm deploy. */
export function validateVms(
  answer: Answer,
  report: HostReport,
  out: ValidationResult,
  options: ValidateOptions & { findings?: readonly Finding[] } = {},
): void {
  // A caller that already validated (the planner, given prepare's validation) passes its findings,
  // the template check's included: nothing runs again.
  const result = options.findings
    ? splitFindings([...options.findings])
    : validateAnswer(answer, report, options);
  const own = (p: string) => p.startsWith("vms[");
  out.errors.push(...result.errors.filter((e) => own(e.path)));
  out.warnings.push(...result.warnings.filter((e) => own(e.path)));
}
