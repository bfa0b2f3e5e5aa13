// Bad fleet directories through `kvmstrap fleet answer` (in process, as main runs it): every problem
// of every file is reported at once as file:line:col: key: message, relative to the fleet
// directory, with exit 2 and no stack trace.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fleetCommand } from "../../src/cli/fleet-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const tmp = mkdtempSync(path.join(tmpdir(), `kvmstrap-fleet-files-${process.pid}-`));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fleet(files: Record<string, string>): string {
  const dir = path.join(tmp, `f${n++}`);
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

const answer = (dir: string, ...more: string[]) =>
  captureCli(() => fleetCommand(["answer", "n1", "--fleet", dir, ...more]));

describe("bad fleet files", () => {
  it("reports every problem of every file at once, each with its file, line, column and key", async () => {
    const dir = fleet({
      "site.yaml": "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplnk: { name: eno1 }\n",
      "racks/r1.yaml": "netwrok:\n  stack: networkd\n",
      "racks/Rack 2.yaml": "host: {}\n",
      "nodes/n1.yaml": "host:\n  hostname: [unclosed\n",
      "roles/big.yaml": "version: 2\n",
      "assign.yaml": "version: 1\nrules:\n  - match: { serail: X1 }\n    roles: [big, gpu]\n",
    });
    const r = await answer(dir);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    const lines = r.stderr;
    expect(lines).toContain(
      'site.yaml:5:7: network.bridges[0].uplnk: unknown key "uplnk"; did you mean "uplink"?',
    );
    expect(lines).toContain('racks/r1.yaml:1:1: netwrok: unknown key "netwrok"; did you mean "network"?');
    expect(lines).toContain("racks/Rack 2.yaml: not a rack file: name it racks/NAME.yaml");
    expect(lines).toMatch(/nodes\/n1\.yaml:\d+:\d+: .*YAML syntax error/);
    expect(lines).toContain(
      "roles/big.yaml:1:10: version: unsupported version: this kvmstrap reads fleet files with version: 1",
    );
    expect(lines).toContain(
      'assign.yaml:3:14: rules[0].match.serail: unknown key "serail"; did you mean "serial"?',
    );
    expect(lines).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("names a role that assign.yaml gives but no roles/ file defines", async () => {
    const dir = fleet({
      "site.yaml": "version: 1\n",
      "roles/big.yaml": "kvm: { nested: true }\n",
      "assign.yaml": "version: 1\nrules:\n  - match: {}\n    roles: [big, gpu]\n",
    });
    const r = await answer(dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('assign.yaml:4:18: rules[0].roles[1]: no roles/gpu.yaml for role "gpu"');
    expect(r.stderr).not.toContain("big");
  });

  it("refuses assign.yaml without its version, and a rule with a bad MAC", async () => {
    const dir = fleet({
      "site.yaml": "version: 1\n",
      "assign.yaml": "rules:\n  - match: { mac: 52-54-00 }\n",
    });
    const r = await answer(dir);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('assign.yaml:1:1: version: missing required key "version"');
    const fixed = fleet({
      "site.yaml": "version: 1\n",
      "assign.yaml": "version: 1\nrules:\n  - match: { mac: 52-54-00 }\n",
    });
    const r2 = await answer(fixed);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(
      "assign.yaml:3:19: rules[0].match.mac: expected a MAC address such as 52:54:00:12:34:56",
    );
  });

  it("needs site.yaml, and a directory", async () => {
    const r = await answer(fleet({ "nodes/n1.yaml": "host: {}\n" }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "site.yaml: no such file: a fleet directory starts with site.yaml (version: 1)",
    );
    const missing = await answer(path.join(tmp, "nowhere"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`--fleet ${path.join(tmp, "nowhere")}: no such directory`);
  });

  it("says what is wrong with the command line (exit 2)", async () => {
    const dir = fleet({ "site.yaml": "version: 1\n" });
    for (const [argv, message] of [
      [["answer"], "fleet answer needs a node name"],
      [["answer", "n1"], "fleet answer needs --fleet DIR"],
      [["explain", "n1", "--fleet", dir], "fleet explain needs a key"],
      [["answer", "n_1", "--fleet", dir], 'node "n_1" is not a host name'],
      [["answer", "n1", "--fleet", dir, "--mac", "zz"], "--mac zz: not a MAC address"],
      [["deploy"], 'unknown fleet subcommand "deploy"'],
      [["rollout"], "fleet rollout needs a subcommand: start, pause, resume, abort or status"],
    ] as const) {
      const r = await captureCli(() => fleetCommand([...argv]));
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr).toContain(message);
    }
  });
});
