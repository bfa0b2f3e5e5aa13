// --nodes FILE: every problem reported at once with its file and line, answers checked by the
// project's answer loader, nodes found by MAC, UUID, serial or asset tag.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../../../src/core/errors.js";
import { loadNodesFile } from "../../../src/pxe/nodes-file.js";
import { tempDir } from "./helpers.js";

const tmp = tempDir("nodes");
afterAll(() => tmp.remove());

function file(name: string, text: string): string {
  const p = path.join(tmp.dir, name);
  writeFileSync(p, text);
  return p;
}

describe("the nodes file", () => {
  it("finds nodes by MAC (any case or separator), UUID, serial and asset tag", async () => {
    file("ok.yaml", "version: 1\n");
    const nodes = await loadNodesFile(
      file(
        "nodes.yaml",
        `nodes:
  - mac: 52:54:00:AB:CD:EF
    name: n1
    answer: ok.yaml
    install: true
  - uuid: "{8C7D6E5F-1234-4ABC-9DEF-0123456789AB}"
    name: n2
  - serial: " CZ123 "
  - asset: rack-7
`,
      ),
    );
    expect(nodes.find({ mac: "52-54-00-ab-cd-ef" })).toMatchObject({ name: "n1", install: true });
    expect(nodes.find({ mac: "52:54:00:ab:cd:ef" })?.answer?.text).toBe("version: 1\n");
    expect(nodes.find({ mac: "00:00:00:00:00:01", uuid: "8c7d6e5f-1234-4abc-9def-0123456789ab" })?.name).toBe(
      "n2",
    );
    expect(nodes.find({ mac: "00:00:00:00:00:01", serial: "CZ123" })?.serial).toBe("CZ123");
    expect(nodes.find({ mac: "00:00:00:00:00:01", asset: "rack-7" })?.asset).toBe("rack-7");
    expect(nodes.find({ mac: "00:00:00:00:00:01", serial: "other" })).toBeUndefined();
  });

  it("reports every schema problem with its line: no identifier, install without answer, unknown key, bad name", async () => {
    const f = file(
      "bad.yaml",
      `nodes:
  - name: lonely
  - mac: 52:54:00:00:00:02
    install: true
  - mac: 52:54:00:00:00:03
    colour: blue
  - mac: 52:54:00:00:00:04
    name: "\${evil}"
`,
    );
    const err = await loadNodesFile(f).catch((e) => e);
    expect(err).toBeInstanceOf(InputError);
    const text = (err as Error).message;
    expect(text).toContain(`${f}:2:5: nodes[0]: a node needs at least one of mac, uuid, serial or asset`);
    expect(text).toContain(`${f}:3:5: nodes[1]: install: true needs an answer file`);
    expect(text).toMatch(/bad\.yaml:5:5: nodes\[2\]: .*colour/);
    expect(text).toMatch(/bad\.yaml:8:11: nodes\[3\]\.name: letters, digits/);
  });

  it("refuses a MAC, serial or UUID used twice, naming both places; and a missing answer file", async () => {
    const f = file(
      "dup.yaml",
      `nodes:
  - mac: 52:54:00:00:00:05
  - mac: 52-54-00-00-00-05
  - serial: X1
    answer: missing.yaml
`,
    );
    const text = await loadNodesFile(f).then(
      () => "",
      (e: Error) => e.message,
    );
    expect(text).toContain("mac 52:54:00:00:00:05 is already used by the node at");
    expect(text).toContain(`${f}:2:5`);
    expect(text).toMatch(/dup\.yaml:4:5: answer missing\.yaml:\n\s+.*missing\.yaml: no such file/);
  });

  it("says so when the file is missing or not YAML", async () => {
    await expect(loadNodesFile(path.join(tmp.dir, "nope.yaml"))).rejects.toThrow(/nope\.yaml: no such file/);
    await expect(loadNodesFile(file("broken.yaml", "nodes: [\n"))).rejects.toThrow(
      /broken\.yaml:\d+:\d+: YAML syntax error/,
    );
  });
});
