// validate = plan = TUI, over the corpus: for every answer on its host, the error findings of
// `answer validate`, the refusals of `plan` and what the TUI reports for the same choice are the
// same, and they are the rule ids the case expects (written by hand in corpus.ts).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RULES } from "../../src/answer/rules/index.js";
import { type Answer, answerSchema } from "../../src/answer/schema.js";
import { validateAnswer } from "../../src/answer/validate.js";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { buildPlan } from "../../src/plan/index.js";
import { bondMemberProblem, buildModel, sriovProblem, uplinkProblem } from "../../src/tui/model.js";
import { detectFixture, labReport } from "../answer/hosts.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import { buildDmarBridgeHost } from "../helpers/sysfs-fixture.js";
import { type AnswerBody, CASES, type Case, type HostKey, type TuiChoice } from "./corpus.js";

const SNAPSHOTS: Partial<Record<HostKey, SharedHost>> = {
  ryzen: "amd-ryzen-1600-desktop",
  laptop: "intel-i7-1270p-laptop",
  server: "intel-xeon-gold-5218r-server",
  guest: "kvm-guest-skylake-offline-cpus",
};

const hosts = new Map<HostKey, HostReport>();
const dmarFx = buildDmarBridgeHost()
  .file("/etc/default/grub", 'GRUB_CMDLINE_LINUX=""\n')
  .file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");
beforeAll(async () => {
  hosts.set("lab", await labReport());
  hosts.set("dmar", await detectFixture(dmarFx));
  if (!sharedHostsAvailable) return;
  for (const [key, name] of Object.entries(SNAPSHOTS)) {
    const fs = new RootedHostFs(sharedHostRoot(name));
    hosts.set(key as HostKey, await detectHost({ fs, pciIds: null, probe: { mode: "never" } }));
  }
}, 60_000);
afterAll(() => dmarFx.cleanup());

function reportFor(c: Case): HostReport {
  const base = hosts.get(c.host);
  if (!base) throw new Error(`no host ${c.host}`);
  const r = structuredClone(base);
  c.variant?.(r);
  return r;
}

/** The draft a TUI choice makes: the same shapes the rules module and the TUI model query. */
function draftOf(t: TuiChoice, report: HostReport): AnswerBody {
  switch (t.kind) {
    case "passthrough":
      return {
        ...(report.iommu.groupsPopulated ? {} : { iommu: { enabled: true } }),
        passthrough: t.addresses.map((address) => ({ device: { address } })),
      };
    case "disk": {
      const row = buildModel(report).disks.find((d) => d.disk.name === t.disk);
      if (!row?.rule) throw new Error(`the TUI cannot name ${t.disk}`);
      return { storage: { pools: [{ name: "vmpool", type: "lvm-thin", wipe: t.wipe, disks: [row.rule] }] } };
    }
    case "sriov":
      return { sriov: [{ pf: t.pf, numVfs: t.numVfs }] };
    case "bond":
      return {
        ...t.before,
        network: {
          ...t.before.network,
          bonds: [
            ...(t.before.network?.bonds ?? []),
            { name: "bond0", mode: "active-backup", interfaces: [t.nic] },
          ],
        },
      };
    case "uplink":
      return { network: { bridges: [{ name: "br0", addresses: "dhcp", uplink: t.nic }] } };
  }
}

/** What the TUI shows for the choice: the obstacle its model or screen reports, or null. */
function tuiSays(t: TuiChoice, report: HostReport): string | null {
  switch (t.kind) {
    case "passthrough": {
      const model = buildModel(report);
      const want = [...t.addresses].sort().join(",");
      for (const g of model.groups) {
        const endpoints = g.devices.filter((d) => !d.bridge).map((d) => d.dev.address);
        if (g.id !== null && endpoints.sort().join(",") === want) return g.blocker;
        const dev = g.devices.find((d) => d.dev.address === want);
        // A loose device, or a bridge line (the screen refuses a bridge with its own obstacle).
        if (dev && (g.id === null || dev.bridge)) return dev.obstacle;
      }
      throw new Error(`the TUI offers no group or device ${want}`);
    }
    case "disk": {
      const row = buildModel(report).disks.find((d) => d.disk.name === t.disk);
      return (t.wipe ? row?.wipeExclusion : row?.exclusion) ?? null;
    }
    case "sriov":
      return sriovProblem(report, t.pf, t.numVfs);
    case "bond":
      return bondMemberProblem(report, { version: 1, ...t.before }, t.nic);
    case "uplink":
      return uplinkProblem(report, { version: 1 }, t.nic);
  }
}

function answerOf(c: Case, report: HostReport): Answer {
  const input = c.tui ? draftOf(c.tui, report) : (c.answer ?? {});
  const answer = answerSchema.parse({ version: 1, ...input });
  c.mutate?.(answer);
  return answer;
}

const usesSnapshot = (c: Case) => SNAPSHOTS[c.host] !== undefined;

describe("validate = plan = TUI over the corpus", () => {
  it("the corpus has at least 40 answers, and every rule of the registry fires in one of them", () => {
    expect(CASES.length).toBeGreaterThanOrEqual(40);
    expect(new Set(CASES.map((c) => c.name)).size).toBe(CASES.length);
    const fired = new Set(
      CASES.flatMap((c) => [...c.errors.map((e) => e.split(" ")[0]), ...(c.warnings ?? [])]),
    );
    const silent = RULES.map((r) => r.id).filter(
      (id) => ![...fired].some((f) => f === id || f?.startsWith(`${id}.`)),
    );
    expect(silent).toEqual([]);
  });
  for (const c of CASES) {
    it.skipIf(usesSnapshot(c) && !sharedHostsAvailable)(`${c.host}: ${c.name}`, () => {
      const report = reportFor(c);
      const answer = answerOf(c, report);
      const v = validateAnswer(answer, report);
      const errors = v.findings.filter((f) => f.level === "error");
      const said = errors.map((f) => `${f.ruleId} ${f.path}`);
      expect(said).toEqual(c.errors);
      const plan = buildPlan(report, answer);
      expect(plan.refusals.map((r) => `${r.ruleId} ${r.path}`)).toEqual(said);
      expect(plan.refusals.map((r) => r.reason)).toEqual(errors.map((f) => f.message));
      if (c.warnings)
        expect(v.findings.filter((f) => f.level === "warning").map((f) => f.ruleId)).toEqual(c.warnings);
      if (c.tui) expect(tuiSays(c.tui, report)).toBe(errors[0]?.message ?? null);
    });
  }
});
if (!sharedHostsAvailable) it.skip(`corpus cases on real-machine snapshots: ${SKIP_REASON}`, () => {});
