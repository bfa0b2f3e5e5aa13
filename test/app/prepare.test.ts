// The use-case layer's prepare: the rule set runs once per prepare (validation, the dry plan that
// lists the files to read, and the plan share its findings), and the plan refuses what validation
// found, VM templates included.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import type { HostFs } from "../../src/host/fs.js";
import { labReport } from "../answer/hosts.js";

// Counts the rule set's runs through the module every caller imports (the real rules still run).
const runs = vi.hoisted(() => ({ count: 0 }));
vi.mock("../../src/answer/rules/index.js", async (original) => {
  const real = await original<typeof import("../../src/answer/rules/index.js")>();
  return {
    ...real,
    runRules: (...args: Parameters<typeof real.runRules>) => {
      runs.count++;
      return real.runRules(...args);
    },
  };
});
const { prepareAnswer } = await import("../../src/app/prepare.js");

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
const noFiles = { readText: async () => null } as unknown as HostFs;

let lab: HostReport;
let dir: string;
beforeAll(async () => {
  lab = await labReport();
  dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-prepare-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("prepare", () => {
  it("runs the rule set once, and the plan refuses what validation found (a missing VM template)", async () => {
    const answer = parseAnswerText(
      [
        "version: 1",
        "host: { hostname: lab1 }",
        "vms:",
        `  - { name: web1, image: debian-12, vcpus: 1, memoryMiB: 512, diskGiB: 4, template: ./nope, user: { name: debian, sshKeys: ["${KEY}"] } }`,
      ].join("\n"),
      "a.yaml",
    );
    runs.count = 0;
    const p = await prepareAnswer(noFiles, lab, answer, { baseDir: dir });
    expect(runs.count).toBe(1);
    expect(p.validation.errors.map((e) => e.path)).toEqual(["vms[0].template"]);
    expect(p.plan.refusals.map((r) => r.path)).toEqual(["vms[0].template"]);
    expect(p.plan.actions.some((a) => a.id.startsWith("host."))).toBe(true);
  });
});
