// The virtual-network rules, one answer file per case (test/answer/network-cases/<case>/): answer.yaml,
// vswitch.json (what detect said about the kernel, over the lab host's report) and expected.json,
// every finding of the whole rule set for that answer ("ruleId level path: message"), reviewed.
// KVMSTRAP_UPDATE_CASES=1 rewrites expected.json (then review the diff).
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadAnswerFile } from "../../src/answer/load.js";
import { validateAnswer } from "../../src/answer/validate.js";
import type { HostReport } from "../../src/detect/types.js";
import { labReport } from "./hosts.js";

const dir = path.join(import.meta.dirname, "network-cases");
const cases = readdirSync(dir).sort();
let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

describe("virtual-network rules, per answer case", () => {
  it("has its cases", () => expect(cases.length).toBeGreaterThanOrEqual(7));
  it.each(cases)("%s", async (name) => {
    const at = (f: string) => path.join(dir, name, f);
    const vswitch = existsSync(at("vswitch.json"))
      ? JSON.parse(readFileSync(at("vswitch.json"), "utf8"))
      : null;
    const report: HostReport = vswitch ? { ...lab, vswitch: { ...vswitch, sources: {} } } : lab;
    const { findings } = validateAnswer(await loadAnswerFile(at("answer.yaml")), report, {
      baseDir: path.join(dir, name),
    });
    const got = findings.map((f) => `${f.ruleId} ${f.level} ${f.path}: ${f.message}`);
    if (process.env.KVMSTRAP_UPDATE_CASES)
      writeFileSync(at("expected.json"), `${JSON.stringify(got, null, 2)}\n`);
    expect(got).toEqual(JSON.parse(readFileSync(at("expected.json"), "utf8")));
  });
});
