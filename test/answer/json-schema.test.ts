// The answer file's JSON Schema (what `kvmstrap answer schema` prints for editors) checked by an
// independent validator, ajv (draft 2020-12, strict mode): it must accept the example and every
// valid case, and reject every schema-level failure case the loader rejects. Cross-field rules
// (zod refinements) cannot be written in JSON Schema; the cases below stay within what it can say.
import { readFileSync } from "node:fs";
import path from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { AnswerError, parseAnswerText } from "../../src/answer/load.js";
import { answerJsonSchema } from "../../src/answer/schema.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const ajv = new Ajv2020({ strict: true, allErrors: true });
addFormats.default(ajv);
const check = ajv.compile(answerJsonSchema());

const example = readFileSync(path.join(projectRoot, "templates/answer.example.yaml"), "utf8");

const VALID: { name: string; yaml: string }[] = [
  { name: "minimal", yaml: "version: 1\n" },
  { name: "example", yaml: example },
  { name: "kvm", yaml: "version: 1\nkvm:\n  nested: true\n  ksm: false\n" },
  {
    name: "bridge by uplink",
    yaml: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplink: { uplink: true }\n",
  },
  { name: "sriov", yaml: "version: 1\nsriov:\n  - pf: { name: eno1 }\n    numVfs: 4\n" },
  {
    name: "passthrough by address",
    yaml: "version: 1\npassthrough:\n  - device: { address: '0000:01:00.0' }\n",
  },
];

const INVALID: { name: string; yaml: string }[] = [
  { name: "missing version", yaml: "host:\n  hostname: kvm01\n" },
  { name: "version 2", yaml: "version: 2\n" },
  { name: "unknown top-level key", yaml: "version: 1\nstorge:\n  pools: []\n" },
  { name: "unknown nested key", yaml: "version: 1\nkvm:\n  turbo: true\n" },
  { name: "wrong type", yaml: "version: 1\nkvm:\n  nested: yes\n" },
  {
    name: "wrong type deep",
    yaml: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      uplink:\n        minSpeedMbps: fast\n",
  },
  {
    name: "missing key in a list",
    yaml: "version: 1\nnetwork:\n  vlans:\n    - name: v20\n      link: br0\n",
  },
  { name: "bad PCI address", yaml: "version: 1\npassthrough:\n  - device:\n      address: 1:0.0\n" },
  {
    name: "typo in a union branch",
    yaml: "version: 1\nnetwork:\n  bridges:\n    - name: br0\n      ports:\n        - { drvier: igb }\n",
  },
  { name: "numVfs missing", yaml: "version: 1\nsriov:\n  - pf: { name: eno1 }\n" },
  {
    name: "plaintext password",
    yaml: "version: 1\nhost:\n  users:\n    - name: ops\n      password: hunter2\n",
  },
];

describe("the emitted JSON Schema, checked by ajv", () => {
  it("compiles in ajv's strict mode", () => {
    expect(typeof check).toBe("function");
  });

  for (const c of VALID) {
    it(`accepts ${c.name}, as the loader does`, () => {
      const data = parseYaml(c.yaml);
      expect(check(data), JSON.stringify(check.errors)).toBe(true);
      expect(() => parseAnswerText(c.yaml, `${c.name}.yaml`)).not.toThrow();
    });
  }

  for (const c of INVALID) {
    it(`rejects ${c.name}, as the loader does`, () => {
      expect(check(parseYaml(c.yaml))).toBe(false);
      expect(() => parseAnswerText(c.yaml, `${c.name}.yaml`)).toThrow(AnswerError);
    });
  }
});
