// The malformed-answer corpus: every broken file gives one clear error naming file:line:col and the
// key path, through the library and through the real CLI (exit 2, never a stack trace).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AnswerError, formatIssue, loadAnswerFile, parseAnswerText } from "../../src/answer/load.js";
import { answerJsonSchema, answerSchema } from "../../src/answer/schema.js";
import { projectRoot } from "../helpers/shared-hosts.js";

interface Case {
  name: string;
  content: string | Buffer;
  /** The one expected issue: line/column null for whole-file problems. */
  line: number | null;
  column?: number;
  path: string;
  message: RegExp;
}

const BIG = 50 * 1024 * 1024;

const CORPUS: Case[] = [
  {
    name: "wrong-type",
    content: "version: 1\nkvm:\n  nested: yes\n",
    line: 3,
    column: 11,
    path: "kvm.nested",
    message: /expected boolean, received string/,
  },
  {
    name: "wrong-type-deep",
    content: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplink:\n        minSpeedMbps: fast\n",
    line: 6,
    column: 23,
    path: "network.bridges[0].uplink.minSpeedMbps",
    message: /expected number/,
  },
  {
    name: "unknown-key-typo",
    content: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplink:\n        nmae: eno1\n",
    line: 6,
    column: 9,
    path: "network.bridges[0].uplink.nmae",
    message: /unknown key "nmae"; did you mean "name"\?/,
  },
  {
    name: "unknown-top-level-key",
    content: "version: 1\nstorge:\n  pools: []\n",
    line: 2,
    column: 1,
    path: "storge",
    message: /did you mean "storage"\?/,
  },
  {
    name: "unknown-key-far-from-any",
    content: "version: 1\nkvm:\n  turbo: true\n",
    line: 3,
    column: 3,
    path: "kvm.turbo",
    message: /unknown key "turbo" \(allowed: modules, nested, hugepages, ksm\)/,
  },
  {
    name: "yaml-unclosed-flow",
    content: "version: 1\nhost:\n  hostname: [kvm01\n  timezone: UTC\n",
    line: 4,
    path: "host.timezone",
    message: /YAML syntax error: flow sequence .* must be sufficiently indented and end with a \]/,
  },
  {
    name: "yaml-unclosed-quote",
    content: 'version: 1\nhost:\n  hostname: "kvm01\n',
    line: 4,
    column: 1,
    path: "",
    message: /YAML syntax error: missing closing "quote/,
  },
  {
    name: "yaml-tab-indent",
    content: "version: 1\nhost:\n  hostname: kvm01\n\ttimezone: UTC\n",
    line: 4,
    column: 1,
    path: "",
    message: /YAML syntax error: tabs are not allowed as indentation/,
  },
  {
    name: "yaml-bad-indent",
    content: "version: 1\nhost:\n  hostname: a\n timezone: UTC\n",
    line: 4,
    path: "",
    message: /YAML syntax error/,
  },
  {
    name: "duplicate-key",
    content: "version: 1\nkvm:\n  nested: true\n  ksm: true\n  nested: false\n",
    line: 5,
    column: 3,
    path: "kvm.nested",
    message: /duplicate key/,
  },
  {
    name: "plaintext-password",
    content: "version: 1\nhost:\n  users:\n    - name: ops\n      password: hunter2\n",
    line: 5,
    column: 17,
    path: "host.users[0].password",
    message: /plaintext passwords are refused: give passwordHash/,
  },
  {
    name: "version-2",
    content: "version: 2\n",
    line: 1,
    column: 10,
    path: "version",
    message: /reads answer files with version: 1/,
  },
  {
    name: "missing-version",
    content: "host:\n  hostname: kvm01\n",
    line: 1,
    column: 1,
    path: "version",
    message: /missing required key "version"/,
  },
  {
    name: "missing-in-list",
    content: "version: 1\nnetwork:\n  vlans:\n    - name: v20\n      link: br0\n",
    line: 4,
    column: 7,
    path: "network.vlans[0].id",
    message: /missing required key "id"/,
  },
  {
    name: "bad-pci-address",
    content: "version: 1\npassthrough:\n  - device:\n      address: 1:0.0\n",
    line: 4,
    column: 16,
    path: "passthrough[0].device.address",
    message: /expected a PCI address such as 0000:01:00.0/,
  },
  {
    name: "union-branch-typo",
    content: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      ports:\n        - { drvier: igb }\n",
    line: 6,
    column: 13,
    path: "network.bridges[0].ports[0].drvier",
    message: /did you mean "driver"\?/,
  },
  { name: "empty", content: "", line: null, path: "", message: /the file is empty/ },
  { name: "comments-only", content: "# nothing here\n", line: null, path: "", message: /the file is empty/ },
  {
    name: "top-level-list",
    content: "- version: 1\n",
    line: 1,
    column: 1,
    path: "",
    message: /top level must be a mapping.*not a list/,
  },
  {
    name: "top-level-scalar",
    content: "just some words\n",
    line: 1,
    column: 1,
    path: "",
    message: /top level must be a mapping.*not a string/,
  },
  {
    name: "binary-garbage",
    content: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0xff, 0xfe, 0x00, 0x10]),
    line: null,
    path: "",
    message: /binary content/,
  },
  {
    name: "nul-in-text",
    content: "version: 1\nkvm:\u0000\n",
    line: 2,
    column: 5,
    path: "",
    message: /binary content \(a NUL byte at offset 15\)/,
  },
];

describe("parseAnswerText: the malformed corpus", () => {
  for (const c of CORPUS.filter((c) => typeof c.content === "string")) {
    it(`${c.name}: one issue at the right place`, () => {
      let err: unknown;
      try {
        parseAnswerText(c.content as string, `${c.name}.yaml`);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(AnswerError);
      const issues = (err as AnswerError).issues;
      expect(issues, JSON.stringify(issues)).toHaveLength(1);
      const [issue] = issues;
      expect(issue?.file).toBe(`${c.name}.yaml`);
      expect(issue?.path).toBe(c.path);
      expect(issue?.message).toMatch(c.message);
      expect(issue?.line).toBe(c.line);
      if (c.column !== undefined) expect(issue?.column).toBe(c.column);
    });
  }

  it("formats issues as file:line:col: path: message", () => {
    expect(formatIssue({ file: "a.yaml", line: 3, column: 7, path: "kvm.nested", message: "bad" })).toBe(
      "a.yaml:3:7: kvm.nested: bad",
    );
    expect(formatIssue({ file: "a.yaml", line: null, column: null, path: "", message: "empty" })).toBe(
      "a.yaml: empty",
    );
  });

  it("reports every schema problem of a file, each at its own line", () => {
    const text = "version: 1\nkvm:\n  nested: 1\n  ksmm: true\nsriov:\n  - pf: { name: eno1 }\n";
    const issues = (() => {
      try {
        parseAnswerText(text, "multi.yaml");
      } catch (e) {
        return (e as AnswerError).issues;
      }
      return [];
    })();
    expect(issues.map(formatIssue).sort()).toEqual(
      [
        'multi.yaml:4:3: kvm.ksmm: unknown key "ksmm"; did you mean "ksm"?',
        'multi.yaml:6:5: sriov[0].numVfs: missing required key "numVfs"',
        "multi.yaml:3:11: kvm.nested: expected boolean, received number",
      ].sort(),
    );
  });
});

describe("loadAnswerFile and the CLI on the corpus", () => {
  let dir: string;
  const files = new Map<string, string>();
  const bin = path.join(projectRoot, "bin/kvmstrap.js");

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-answers-"));
    for (const c of CORPUS) {
      const f = path.join(dir, `${c.name}.yaml`);
      writeFileSync(f, c.content);
      files.set(c.name, f);
    }
    const big = path.join(dir, "huge.yaml");
    writeFileSync(big, Buffer.alloc(BIG, "a: 1\n"));
    files.set("huge", big);
    ensureBuilt();
  }, 120_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses a 50 MB file before parsing it", async () => {
    const t = performance.now();
    await expect(loadAnswerFile(files.get("huge") as string)).rejects.toThrow(/too large for an answer file/);
    expect(performance.now() - t).toBeLessThan(1000);
  });

  it("refuses binary garbage and a missing file", async () => {
    await expect(loadAnswerFile(files.get("binary-garbage") as string)).rejects.toThrow(/binary content/);
    await expect(loadAnswerFile(path.join(dir, "nope.yaml"))).rejects.toThrow(/nope\.yaml: no such file/);
  });

  it("parses the template answer.example.yaml, and it satisfies the schema", async () => {
    const answer = await loadAnswerFile(path.join(projectRoot, "templates/answer.example.yaml"));
    expect(answerSchema.safeParse(answer).success).toBe(true);
    expect(answer.version).toBe(1);
    expect(answer.host?.users[0]?.passwordHash).toMatch(/^\$6\$/);
    expect(answer.network?.bridges[0]?.uplink).toEqual({ uplink: true });
    expect(answer.vms.map((v) => v.name)).toEqual(["render01"]);
    expect(answer.vms[0]?.nics).toEqual([{ bridge: "br0" }, { sriov: { driver: "igb", name: "enp*s0f0" } }]);
  });

  it("exports a JSON Schema that is strict", () => {
    const schema = answerJsonSchema() as { additionalProperties?: unknown; required?: string[] };
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toContain("version");
  });

  const cases = [...CORPUS.map((c) => ({ name: c.name, c })), { name: "huge", c: null }];
  for (const { name, c } of cases) {
    it(`kvmstrap answer validate ${name}.yaml: exit 2, one located error, no stack trace`, () => {
      const f = files.get(name) as string;
      const run = spawnSync(process.execPath, [bin, "answer", "validate", f, "--report", reportFile()], {
        encoding: "utf8",
      });
      expect(run.status, run.stderr).toBe(2);
      expect(run.stderr).not.toMatch(/ {4}at /);
      expect(run.stderr).not.toMatch(/internal error/);
      const lines = run.stderr.trim().split("\n");
      expect(lines).toHaveLength(2); // the issue, then the summary
      const where = c && c.line !== null ? `${f}:${c.line}:` : `${f}: `;
      expect(lines[0]?.startsWith(where), lines[0]).toBe(true);
      if (c?.path) expect(lines[0]).toContain(` ${c.path}: `);
      expect(lines[1]).toMatch(/invalid \(1 error, 0 warnings\)/);
    });
  }

  // A bare minimal report: the malformed files fail before the hardware is looked at.
  function reportFile(): string {
    const f = path.join(dir, "report.json");
    if (!existsSync(f)) {
      writeFileSync(
        f,
        JSON.stringify({
          schema: "kvmstrap.host-report/1",
          nics: [],
          disks: [],
          pci: [],
          iommu: { groups: [] },
          memory: {},
        }),
      );
    }
    return f;
  }
});

/** The CLI runs from dist/: build it when it is missing or older than the answer sources. */
function ensureBuilt(): void {
  const out = path.join(projectRoot, "dist/cli/answer-command.js");
  const sources = [
    "src/cli/answer-command.ts",
    "src/answer/load.ts",
    "src/answer/validate.ts",
    "src/cli/main.ts",
  ];
  const newest = Math.max(...sources.map((s) => statSync(path.join(projectRoot, s)).mtimeMs));
  if (!existsSync(out) || statSync(out).mtimeMs < newest) {
    // tsc still emits when someone else's in-progress file has a type error; the check below decides.
    spawnSync("npm", ["run", "build"], { cwd: projectRoot, encoding: "utf8" });
  }
  expect(existsSync(path.join(projectRoot, "bin/kvmstrap.js"))).toBe(true);
  expect(existsSync(out), "dist/cli/answer-command.js: npm run build did not produce it").toBe(true);
}
