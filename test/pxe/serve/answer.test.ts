// The answer a node is served (src/pxe/http/answer.ts): parsed once per nodes-file entry however
// many nodes fetch it, and byte for byte what editing a fresh parse of the file gives (the
// operator's text, comments and quoting kept), with each request's own webhook and token.
import { readFileSync } from "node:fs";
import { describe, expect, it, vi } from "vitest";
import * as yaml from "yaml";
import { servedAnswer } from "../../../src/pxe/http/answer.js";
import { ANSWER_A, ANSWER_B } from "./helpers.js";

const parses = vi.hoisted(() => ({ count: 0 }));
vi.mock("yaml", async (original) => {
  const real = await original<typeof import("yaml")>();
  return {
    ...real,
    parseDocument: (...args: Parameters<typeof real.parseDocument>) => {
      parses.count++;
      return real.parseDocument(...args);
    },
  };
});

/** The edit on a fresh parse, as every request did it before answers were parsed once. */
function freshEdit(text: string, webhook: string, token: string): string {
  const doc = yaml.parseDocument(text);
  doc.setIn(["report", "webhook"], webhook);
  const headers = doc.getIn(["report", "headers"]);
  if (yaml.isMap(headers))
    for (const item of [...headers.items]) {
      const key = String((item.key as { value?: unknown })?.value ?? item.key);
      if (key.toLowerCase() === "authorization") headers.delete(item.key);
    }
  doc.setIn(["report", "headers", "Authorization"], `Bearer ${token}`);
  const secret = doc.getIn(["report", "secretHeaders"]);
  if (yaml.isSeq(secret)) {
    const names = secret.items.map((i) => String((i as { value?: unknown })?.value ?? i).toLowerCase());
    if (!names.includes("authorization")) secret.add("authorization");
  }
  return doc.toString();
}

const EXAMPLE = readFileSync(new URL("../../../templates/answer.example.yaml", import.meta.url), "utf8");
const QUOTED = `version: 1
report:
  webhook: "https://old.example.net/hook" # the site's collector
  secretHeaders: [X-Key]
  headers:
    X-Key: abc
    AUTHORIZATION: "Bearer old"
host:
  hostname: q # short
`;

describe("the served answer", () => {
  it("is parsed once per entry, however many nodes fetch it", () => {
    const entry = { text: ANSWER_A };
    parses.count = 0;
    for (let i = 0; i < 50; i++)
      servedAnswer(entry, `http://10.0.0.1:8080/v1/nodes/52%3A54%3A00%3A00%3A00%3A${i}/events`, `t${i}`);
    expect(parses.count).toBe(1);
  });

  it("is byte for byte the fresh edit, each request with its own webhook and token", () => {
    for (const text of [ANSWER_A, ANSWER_B, EXAMPLE, QUOTED]) {
      const entry = { text };
      for (let i = 0; i < 3; i++) {
        const hook = `http://10.81.0.1:8080/v1/nodes/52%3A54%3A00%3Aaa%3A00%3A0${i}/events`;
        const token = `m${i}x9k2.${"Ab_-".repeat(10)}${i}`;
        const got = servedAnswer(entry, hook, token);
        expect(got).toBe(freshEdit(text, hook, token));
        expect(got).toContain(token);
        expect(got).not.toContain("Bearer token");
      }
    }
  });
});
