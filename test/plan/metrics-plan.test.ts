// The answer's metrics: as a plan: one golden file per case (test/plan/golden-metrics/, reviewed):
// the text `kvmstrap plan` prints and the unit it writes. The unit is held to systemd's own parser
// (systemd-analyze verify, no warning), the listen address is the management one unless the answer
// names another, and a bad address or port is refused by the schema with its key.

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { AnswerError, parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan, planFiles } from "../../src/plan/index.js";
import { METRICS_UNIT_PATH, renderMetricsService } from "../../src/plan/metrics-plan.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
/** The lab host with addresses read on its management NIC (a link-local one listed first). */
let addressed: HostReport;
beforeAll(async () => {
  lab = await labReport();
  addressed = structuredClone(lab);
  const mgmt = addressed.nics.find((n) => n.management);
  if (!mgmt) throw new Error("the lab host has no management NIC");
  mgmt.addresses = [
    { family: "inet6", address: "fe80::1", prefixLength: 64, scope: "link" },
    { family: "inet6", address: "2001:db8::10", prefixLength: 64, scope: "global" },
    { family: "inet", address: "192.0.2.10", prefixLength: 24, scope: "global" },
  ];
});
const answer = (yaml: string) => parseAnswerText(`version: 1\n${yaml}`, "answer.yaml");
const unitOf = (p: ReturnType<typeof buildPlan>) => {
  const a = p.actions.find((x) => x.id === "metrics.unit");
  return a?.kind === "write-file" ? a.content : null;
};
const ids = (p: ReturnType<typeof buildPlan>) =>
  p.actions.filter((x) => x.id.startsWith("metrics.")).map((x) => x.id);

describe("metrics: in the plan", () => {
  it("no address given: the unit listens on the management address the report reads", async () => {
    const p = buildPlan(addressed, answer("metrics: {}\n"));
    expect(p.refusals).toEqual([]);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-metrics/management.txt");
    await expect(unitOf(p)).toMatchFileSnapshot("./golden-metrics/kvmstrap-metrics.service");
    expect(unitOf(p)).toContain("ExecStart=/usr/bin/env kvmstrap metrics --listen 192.0.2.10:9178\n");
    const enable = p.actions.find((x) => x.id === "metrics.enable");
    expect(enable?.kind === "run-command" && [enable.argv, enable.undo]).toEqual([
      ["systemctl", "enable", "--now", "kvmstrap-metrics.service"],
      ["systemctl", "disable", "--now", "kvmstrap-metrics.service"],
    ]);
  });

  it("an address and port given (IPv6 in brackets, a wildcard only when written)", async () => {
    const v6 = buildPlan(lab, answer('metrics: { listen: "2001:db8::7", port: 9100 }\n'));
    expect(unitOf(v6)).toContain("--listen [2001:db8::7]:9100\n");
    const wildcard = buildPlan(lab, answer('metrics: { listen: "0.0.0.0" }\n'));
    expect(wildcard.refusals).toEqual([]);
    await expect(renderPlanText(wildcard)).toMatchFileSnapshot("./golden-metrics/wildcard.txt");
  });

  it("vcpuStats: the service asks for the vCPU figures; turning it on later restarts it", async () => {
    const first = buildPlan(addressed, answer("metrics: {}\n"));
    expect(unitOf(first)).not.toContain("--vcpu-stats");
    const current = new Map([[METRICS_UNIT_PATH, unitOf(first)]]);
    const on = buildPlan(addressed, answer("metrics: { vcpuStats: true }\n"), current);
    expect(unitOf(on)).toContain(
      "ExecStart=/usr/bin/env kvmstrap metrics --listen 192.0.2.10:9178 --vcpu-stats\n",
    );
    expect(ids(on)).toContain("metrics.restart");
  });

  it("no address given and none to be found: refused, nothing planned", async () => {
    const p = buildPlan(lab, answer("metrics: {}\n"));
    expect(p.refusals.map((r) => r.path)).toEqual(["metrics.listen"]);
    expect(ids(p)).toEqual([]);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-metrics/no-address.txt");
  });

  it("planned again over its unit: only the (checked) enable; a changed port restarts, undone in order", async () => {
    const first = buildPlan(addressed, answer("metrics: {}\n"));
    const current = new Map([[METRICS_UNIT_PATH, unitOf(first)]]);
    expect(ids(buildPlan(addressed, answer("metrics: {}\n"), current))).toEqual(["metrics.enable"]);
    const changed = buildPlan(addressed, answer("metrics: { port: 9200 }\n"), current);
    expect(ids(changed)).toEqual([
      "metrics.restart-on-undo",
      "metrics.reload-on-undo",
      "metrics.unit",
      "metrics.daemon-reload",
      "metrics.enable",
      "metrics.restart",
    ]);
    const unit = changed.actions.find((x) => x.id === "metrics.unit");
    expect(unit?.kind === "write-file" && unit.previous).toBe(unitOf(first));
    await expect(renderPlanText(changed)).toMatchFileSnapshot("./golden-metrics/changed.txt");
  });

  it("the section left the answer: the unit is stopped, disabled and removed, each with its inverse", async () => {
    const unit = renderMetricsService("192.0.2.10:9178");
    expect(planFiles(lab, answer(""))).toContain(METRICS_UNIT_PATH);
    const p = buildPlan(lab, answer(""), new Map([[METRICS_UNIT_PATH, unit]]));
    expect(ids(p)).toEqual([
      "metrics.removed.disable",
      "metrics.removed.unit",
      "metrics.removed.daemon-reload",
    ]);
    const disable = p.actions.find((x) => x.id === "metrics.removed.disable");
    expect(disable?.kind === "run-command" && disable.undo).toEqual([
      "systemctl",
      "enable",
      "--now",
      "kvmstrap-metrics.service",
    ]);
    const removed = p.actions.find((x) => x.id === "metrics.removed.unit");
    expect(removed?.kind === "remove-file" && removed.previous).toBe(unit);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-metrics/removed.txt");
    expect(ids(buildPlan(lab, answer("")))).toEqual([]);
  });

  it("a name, an address with a port or a port out of range is refused naming the key", () => {
    const bad = (yaml: string) => {
      try {
        answer(yaml);
      } catch (e) {
        return e instanceof AnswerError ? e.message : String(e);
      }
      return "accepted";
    };
    expect(bad("metrics: { listen: myhost }\n")).toMatch(/metrics\.listen/);
    expect(bad('metrics: { listen: "10.0.0.1:9178" }\n')).toMatch(/metrics\.listen/);
    expect(bad("metrics: { port: 0 }\n")).toMatch(/metrics\.port/);
    expect(bad("metrics: { port: 9178, bind: x }\n")).toMatch(/metrics/);
  });
});

const hasAnalyze = await execa("systemd-analyze", ["--version"], { reject: false }).then(
  (r) => r.exitCode === 0,
  () => false,
);

describe.skipIf(!hasAnalyze)(
  "the unit under systemd-analyze verify (skipped without systemd-analyze)",
  () => {
    it("loads without an error or a warning, for IPv4 and IPv6", async () => {
      const dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-metrics-unit-${process.pid}-`));
      try {
        for (const listen of ["192.0.2.10:9178", "[2001:db8::7]:9100"]) {
          const file = path.join(dir, "kvmstrap-metrics.service");
          await writeFile(file, renderMetricsService(listen));
          const r = await execa("systemd-analyze", ["verify", file], { reject: false });
          expect(r.exitCode, r.stderr).toBe(0);
          expect(r.stderr.trim(), listen).toBe("");
        }
        // The check can fail: a key systemd does not know is reported.
        const file = path.join(dir, "kvmstrap-metrics.service");
        await writeFile(file, renderMetricsService("192.0.2.10:9178").replace("ProtectHome", "ProtectHomes"));
        const r = await execa("systemd-analyze", ["verify", file], { reject: false });
        expect(r.stderr).toMatch(/Unknown key 'ProtectHomes'/);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  },
);
