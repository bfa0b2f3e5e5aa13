// The cluster: section's rules, one answer file per case (test/answer/cluster-cases/<case>/answer.yaml)
// checked on the lab host named kvm-a, and expected.json: every cluster.* finding of the whole rule
// set for that answer ("ruleId level path: message"), reviewed. A case's optional report.json holds
// report fields that replace the lab's (a host without a kernel client, say). The schema errors of a case would
// fail loading, so each case is a valid answer that only the rules refuse.
// KVMSTRAP_UPDATE_CASES=1 rewrites expected.json (then review the diff).
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadAnswerFile } from "../../src/answer/load.js";
import { validateAnswer } from "../../src/answer/validate.js";
import type { HostReport } from "../../src/detect/types.js";
import { labReport } from "./hosts.js";

const dir = path.join(import.meta.dirname, "cluster-cases");
const cases = readdirSync(dir).sort();
let lab: HostReport;
beforeAll(async () => {
  lab = { ...(await labReport()), hostname: "kvm-a" };
});

const clusterFindings = async (name: string, lab: HostReport) => {
  const own = path.join(dir, name, "report.json");
  const report = existsSync(own) ? { ...lab, ...JSON.parse(readFileSync(own, "utf8")) } : lab;
  const { findings } = validateAnswer(await loadAnswerFile(path.join(dir, name, "answer.yaml")), report, {
    baseDir: path.join(dir, name),
  });
  return findings
    .filter((f) => f.ruleId.startsWith("cluster."))
    .map((f) => `${f.ruleId} ${f.level} ${f.path}: ${f.message}`);
};

describe("cluster rules, per answer case", () => {
  it("has its cases", () => expect(cases.length).toBeGreaterThanOrEqual(12));
  it.each(cases)("%s", async (name) => {
    const at = (f: string) => path.join(dir, name, f);
    const got = await clusterFindings(name, lab);
    if (process.env.KVMSTRAP_UPDATE_CASES)
      writeFileSync(at("expected.json"), `${JSON.stringify(got, null, 2)}\n`);
    expect(got).toEqual(JSON.parse(readFileSync(at("expected.json"), "utf8")));
  });

  it("a host found by its FQDN's first label is the member; no hostname is a warning", async () => {
    expect(await clusterFindings("valid-two-node", { ...lab, hostname: "kvm-b.example.net" })).toEqual([]);
    expect(await clusterFindings("valid-two-node", { ...lab, hostname: null })).toEqual([
      "cluster.self warning cluster.members: the host report has no hostname: cannot tell which of kvm-a, kvm-b this host is",
    ]);
  });

  it("plan refuses what the rules refuse: a non-member's answer plans no cluster action", async () => {
    const { buildPlan } = await import("../../src/plan/index.js");
    const answer = await loadAnswerFile(path.join(dir, "not-a-member", "answer.yaml"));
    const plan = buildPlan(lab, answer);
    expect(plan.refusals).toContainEqual(
      expect.objectContaining({ path: "cluster.members", ruleId: "cluster.self" }),
    );
    expect(plan.actions.filter((a) => a.id.startsWith("cluster."))).toEqual([]);
  });
});
