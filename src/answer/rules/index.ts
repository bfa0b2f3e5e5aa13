// The one rule set. Every safety and consistency rule of an answer against a host lives in this
// folder, in the ordered list below; `answer validate` reports its findings, `plan` turns its errors
// into refusals (and plans nothing a finding refused), the TUI asks it about each choice, and
// `explain` lists the same match rules. Pure: the answer and the host report in, findings out.
import type { HostReport } from "../../detect/types.js";
import { type Answer, type AnswerInput, answerSchema } from "../schema.js";
import { clusterRules, deploysHere } from "./cluster.js";
import { consoleRules } from "./consoles.js";
import { gatherFacts } from "./facts.js";
import { hostRules } from "./host.js";
import { installRules } from "./install.js";
import { kernelRules } from "./kernel.js";
import { matchRule } from "./match.js";
import { memoryRules } from "./memory.js";
import { nameRules } from "./names.js";
import { networkRules } from "./network.js";
import { passthroughRules } from "./passthrough.js";
import { requireRules } from "./requires.js";
import { roleRules } from "./roles.js";
import { sriovRules } from "./sriov.js";
import { storageRules } from "./storage.js";
import type { Finding, Rule } from "./types.js";
import { virtualNetworkRules } from "./virtual-networks.js";
import { vmHostRules } from "./vm-host.js";
import { vmRules } from "./vms.js";

export { hostdevNetworkName } from "./names.js";
export { sriovOf } from "./sriov.js";
export type { Finding, Level, Rule } from "./types.js";
export { sriovEntryFor } from "./vms.js";

/** Every rule, in the order findings are reported. */
export const RULES: readonly Rule[] = [
  matchRule,
  ...nameRules,
  ...hostRules,
  ...networkRules,
  ...virtualNetworkRules,
  ...sriovRules,
  ...passthroughRules,
  ...roleRules,
  ...kernelRules,
  ...memoryRules,
  ...storageRules,
  ...installRules,
  ...requireRules,
  ...vmRules,
  ...vmHostRules,
  ...consoleRules,
  ...clusterRules,
];

/** Runs the registry; findings come out grouped by rule, in the registry's order. */
const check = (rules: readonly Rule[], answer: Answer, report: HostReport): Finding[] => {
  const input = { answer, report, facts: gatherFacts(answer, report) };
  return rules.flatMap((r) => r.check(input));
};

/** Rules about the answer as every member shares it, not about this host. */
const SHARED_RULE = /^(cluster|names)\./;

export function runRules(answer: Answer, report: HostReport): Finding[] {
  // A cluster answer goes to every member; a VM another member runs is checked there, against its
  // report, not against this one (its passthrough device, its hugepages). The host-bound rules see
  // this host's VMs only, and their findings keep the answer file's own vms[i] numbering.
  const here = answer.cluster
    ? answer.vms.flatMap((vm, i) => (deploysHere(answer, report, vm) ? [i] : []))
    : null;
  if (!here || here.length === answer.vms.length) return check(RULES, answer, report);
  const local: Answer = { ...answer, vms: here.map((i) => answer.vms[i] as Answer["vms"][number]) };
  const renumber = (f: Finding): Finding => ({
    ...f,
    path: f.path.replace(/^vms\[(\d+)\]/, (_, j: string) => `vms[${here[Number(j)]}]`),
  });
  return [
    ...check(
      RULES.filter((r) => SHARED_RULE.test(r.id)),
      answer,
      report,
    ),
    ...check(
      RULES.filter((r) => !SHARED_RULE.test(r.id)),
      local,
      report,
    ).map(renumber),
  ];
}

export const errorsOf = (findings: readonly Finding[]) => findings.filter((f) => f.level === "error");

/**
 * Whether an error finding refused this item: a finding at the path itself, below it
 * (passthrough[0].device refuses passthrough[0]) or at one of the given section paths.
 */
export function refused(findings: readonly Finding[], path: string, ...sections: string[]): boolean {
  return findings.some(
    (f) =>
      f.level === "error" &&
      (f.path === path ||
        f.path.startsWith(`${path}.`) ||
        f.path.startsWith(`${path}[`) ||
        sections.includes(f.path)),
  );
}

/** The findings of an answer the TUI would build, given as the draft it edits. */
export function findingsForDraft(draft: AnswerInput, report: HostReport): Finding[] {
  const parsed = answerSchema.safeParse(draft);
  if (!parsed.success)
    return parsed.error.issues.map((i) => ({
      ruleId: "schema",
      path: i.path.map(String).join(".") || "(file)",
      level: "error",
      message: i.message,
      remediation: null,
    }));
  return runRules(parsed.data, report);
}

/**
 * What the rules say about passing these devices through together (the TUI's choice of a group, or
 * one device outside any group), with the IOMMU enabled by the answer when the host has it off,
 * as the TUI's draft does.
 */
export function passthroughFindingsFor(report: HostReport, addresses: readonly string[]): Finding[] {
  return findingsForDraft(
    {
      version: 1,
      ...(report.iommu.groupsPopulated ? {} : { iommu: { enabled: true } }),
      passthrough: addresses.map((address) => ({ device: { address } })),
    },
    report,
  );
}

/** What the rules say about a pool made of this one disk (named as the TUI names it), wiped or not. */
export function diskFindingsFor(
  report: HostReport,
  disk: { byId?: string; serial?: string },
  wipe: boolean,
): Finding[] {
  return findingsForDraft(
    { version: 1, storage: { pools: [{ name: "vmpool", type: "lvm-thin", wipe, disks: [disk] }] } },
    report,
  ).filter((f) => f.ruleId !== "storage.zfs-missing");
}
