// The fleet's per-node answers, case by case, through the CLI that ships (`kvmstrap fleet answer` and
// `fleet explain`, in process): each test/fleet/cases/<case>/ holds a fleet directory, case.yaml (the
// node, its rack and identity, and which real machine's snapshot gives its report) and the expected
// outcome: expected.json (status, rack, roles, layers, every value with the layer and line that set
// it, the hold reasons) and, for cases that explain a key, expected-explain.txt. Reports come from
// the shared snapshots, detected in place. KVMSTRAP_UPDATE_CASES=1 rewrites the expectations (review
// the diff: each is meant to be read).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { fleetCommand } from "../../src/cli/fleet-command.js";
import { detectHost } from "../../src/detect/index.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { captureCli } from "../helpers/capture-cli.js";
import {
  type SharedHost,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";

const casesDir = path.join(import.meta.dirname, "cases");
const update = process.env.KVMSTRAP_UPDATE_CASES === "1";
const tmp = mkdtempSync(path.join(tmpdir(), `kvmstrap-fleet-cases-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Case {
  node: string;
  rack?: string;
  serial?: string;
  macs?: string[];
  host: SharedHost | null;
  explain?: string;
}

const reports = new Map<string, string>();
async function reportFile(host: SharedHost): Promise<string> {
  const known = reports.get(host);
  if (known) return known;
  const report = await detectHost({
    fs: new RootedHostFs(sharedHostRoot(host)),
    probe: { mode: "never" },
    pciIds: null,
  });
  const file = path.join(tmp, `${host}.json`);
  writeFileSync(file, JSON.stringify({ report }));
  reports.set(host, file);
  return file;
}

function expectFile(file: string, actual: string): void {
  if (update || !existsSync(file)) writeFileSync(file, actual);
  const want = readFileSync(file, "utf8");
  // JSON is compared as data (the formatter lays the files out its own way), text as text.
  if (file.endsWith(".json")) expect(JSON.parse(actual)).toEqual(JSON.parse(want));
  else expect(actual).toBe(want);
}

const show = (v: unknown) => (typeof v === "string" ? v : JSON.stringify(v));
const at = (o: { file: string; line: number | null }) => (o.line === null ? o.file : `${o.file}:${o.line}`);

const cases = readdirSync(casesDir).filter((d) => existsSync(path.join(casesDir, d, "case.yaml")));

describe.skipIf(!sharedHostsAvailable)("fleet answer cases (test/fleet/cases)", () => {
  it.each(cases)("%s", async (name) => {
    const dir = path.join(casesDir, name);
    const c = parseYaml(readFileSync(path.join(dir, "case.yaml"), "utf8")) as Case;
    const args = [c.node, "--fleet", path.join(dir, "fleet")];
    if (c.host) args.push("--report", await reportFile(c.host));
    if (c.rack) args.push("--rack", c.rack);
    if (c.serial) args.push("--serial", c.serial);
    for (const m of c.macs ?? []) args.push("--mac", m);

    const r = await captureCli(() => fleetCommand(["answer", ...args, "--json"]));
    expect(r.stderr).toBe("");
    const a = JSON.parse(r.stdout);
    expect(r.code).toBe(a.status === "ready" ? 0 : 1);
    const summary = {
      status: a.status,
      rack: a.rack,
      roles: a.roles,
      layers: a.layers.map(
        (l: { kind: string; name: string; file: string }) => `${l.kind} ${l.name}: ${l.file}`,
      ),
      assignment: a.assignment.map(
        (t: { index: number; matched: unknown; reasons: string[] }) =>
          `rules[${t.index}] ${t.matched === true ? "matched" : t.matched === false ? "not matched" : "undecided"}: ${t.reasons.join("; ")}`,
      ),
      values: a.values.map(
        (v: {
          path: string;
          value: unknown;
          layer: string;
          file: string;
          line: number | null;
          shadowed: { layer: string; value: unknown }[];
        }) =>
          `${v.path} = ${show(v.value)} <- ${v.layer} ${at(v)}${v.shadowed.map((s) => ` (over ${s.layer}: ${show(s.value)})`).join("")}`,
      ),
      removed: a.removed.map(
        (x: { path: string; layer: string; file: string; line: number | null }) =>
          `${x.path} <- removed by ${x.layer} ${at(x)}`,
      ),
      holds: a.holds.map(
        (h: {
          file: string;
          line: number | null;
          column: number | null;
          path: string;
          layer: string | null;
          message: string;
        }) =>
          `${h.line === null ? h.file : `${h.file}:${h.line}:${h.column}`}: ${h.path ? `${h.path}: ` : ""}${h.message}${h.layer ? ` [${h.layer}]` : ""}`,
      ),
      warnings: a.warnings.map((h: { path: string; message: string }) => `${h.path}: ${h.message}`),
    };
    expectFile(path.join(dir, "expected.json"), `${JSON.stringify(summary, null, 2)}\n`);

    // The text form tells the same: the status line and every hold, as file:line:col: key: message.
    const text = await captureCli(() => fleetCommand(["answer", ...args]));
    expect(text.code).toBe(r.code);
    expect(text.stdout).toContain(`node ${c.node}: ${a.status}`);
    for (const h of a.holds) expect(text.stdout).toContain(h.message);

    if (c.explain) {
      const e = await captureCli(() =>
        fleetCommand(["explain", ...args.slice(0, 1), c.explain as string, ...args.slice(1)]),
      );
      expect(e.code).toBe(0);
      expectFile(path.join(dir, "expected-explain.txt"), e.stdout);
    }
  });
});

if (!sharedHostsAvailable)
  describe("fleet answer cases", () => {
    it.skip(`skipped: ${SKIP_REASON}`, () => {});
  });
