// kvmstrap's own wire formats read back: a journal on disk is validated (a corrupt one is a clear
// InputError naming the file, never silently ignored or half-trusted), and the event stream
// round-trips through its schema.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyPlan, undoLastRun } from "../../src/apply/engine.js";
import { type ApplyEvent, EventBus, jsonLinesSink, parseEventLine } from "../../src/apply/events.js";
import { Journal } from "../../src/apply/journal.js";
import { InputError } from "../../src/core/errors.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { planOf, tempDir, writeFileAction } from "./helpers.js";

async function appliedRun() {
  const root = await tempDir();
  const stateDir = await tempDir("kvmstrap-state-");
  const options = { target: new RootedTargetFs(root), runner: new ExecaRunner(), stateDir };
  const r = await applyPlan(planOf([writeFileAction("a", "/etc/a.conf", "a\n")]), options);
  return { root, stateDir, options, runId: r.runId, file: new Journal(stateDir).file(r.runId) };
}

describe("the journal read from disk", () => {
  it("a valid journal loads as written", async () => {
    const { stateDir, runId } = await appliedRun();
    const run = await new Journal(stateDir).load(runId);
    expect(run).toMatchObject({ schema: "kvmstrap.journal/1", runId, phase: "done" });
    expect(run?.plan.actions[0]).toMatchObject({ kind: "write-file", path: "/etc/a.conf" });
  });

  it.each([
    ["not JSON", "{ truncated", /is corrupt: not JSON/],
    [
      "a wrong phase",
      (t: string) => t.replace('"phase": "done"', '"phase": "sort-of-done"'),
      /is corrupt: phase: /,
    ],
    [
      "an action of an unknown kind",
      (t: string) => t.replace('"kind": "write-file"', '"kind": "wipe"'),
      /is corrupt: plan\.actions\[0\]\.kind: /,
    ],
    [
      "a status that is not one",
      (t: string) => t.replace('"status": "done"', '"status": 7'),
      /is corrupt: actions\[0\]\.status: /,
    ],
  ])(
    "a corrupt journal (%s) is an InputError naming the file, for apply and undo alike",
    async (_, edit, message) => {
      const { file, options } = await appliedRun();
      const { readFile } = await import("node:fs/promises");
      const text = await readFile(file, "utf8");
      await writeFile(file, typeof edit === "string" ? edit : edit(text));
      const check = (e: unknown) => {
        expect(e).toBeInstanceOf(InputError);
        expect((e as Error).message).toContain(`journal ${file}`);
        expect((e as Error).message).toMatch(message);
      };
      check(await applyPlan(planOf([writeFileAction("b", "/etc/b.conf", "b\n")]), options).catch((e) => e));
      check(await undoLastRun(options).catch((e) => e));
    },
  );

  it("a missing run is null, not an error", async () => {
    const stateDir = await tempDir("kvmstrap-state-");
    await mkdir(path.join(stateDir, "runs"));
    expect(await new Journal(stateDir).load("20250101T000000.000Z-abcdef")).toBeNull();
  });
});

describe("the event stream", () => {
  it("every event an apply emits round-trips through the schema as a JSON line", async () => {
    const { options } = await appliedRun();
    const lines: string[] = [];
    const stream = new (await import("node:stream")).Writable({
      write(chunk, _enc, done) {
        lines.push(...String(chunk).split("\n").filter(Boolean));
        done();
      },
    });
    const bus = new EventBus();
    const seen: ApplyEvent[] = [];
    bus.subscribe((e) => {
      seen.push(e);
    });
    bus.subscribe(jsonLinesSink(stream));
    await applyPlan(
      planOf([writeFileAction("c", "/etc/c.conf", "c\n"), writeFileAction("a", "/etc/a.conf", "a\n")]),
      {
        ...options,
        bus,
      },
    );
    expect(lines.length).toBe(seen.length);
    expect(new Set(seen.map((e) => `${e.type}:${"phase" in e ? e.phase : ""}`))).toEqual(
      new Set(["run:STARTED", "step:started", "step:finished", "step:skipped", "run:SUCCEEDED"]),
    );
    expect(lines.map((l) => parseEventLine(l))).toEqual(seen);
  });

  it("a line that is not an event is an InputError naming where it came from", () => {
    expect(() => parseEventLine('{"type":"step","phase":"exploded"}', "events.jsonl:3")).toThrow(
      /^events\.jsonl:3: /,
    );
    expect(() => parseEventLine("nope", "events.jsonl:4")).toThrow(/^events\.jsonl:4: not JSON/);
  });
});
