import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Journal } from "../../src/apply/journal.js";
import { APPLY_HELP, applyCommand, confirmCommand, undoCommand } from "../../src/cli/apply-command.js";
import { InputError, UsageError } from "../../src/cli/errors.js";
import { planOf, populate, tempDir, tree, writeFileAction } from "./helpers.js";

let stderr: string[] = [];
beforeEach(() => {
  stderr = [];
  vi.spyOn(process.stderr, "write").mockImplementation((c) => {
    stderr.push(String(c));
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

async function fixture() {
  const root = await tempDir();
  const dir = await tempDir("kvmstrap-cli-");
  await populate(root, { "etc/hostname": "old\n" });
  const plan = planOf([
    writeFileAction("host.name", "/etc/hostname", "kvm-01\n", { previous: "old\n" }),
    writeFileAction("kvm.conf", "/etc/modules-load.d/kvm.conf", "kvm\n"),
  ]);
  const planFile = path.join(dir, "plan.json");
  await writeFile(planFile, JSON.stringify(plan));
  return { root, dir, planFile, stateDir: path.join(dir, "state") };
}

describe("kvmstrap apply / undo / confirm", () => {
  it("refuses an unattended run without --yes (exit 2), and bad flags or plans", async () => {
    const { root, planFile } = await fixture();
    await expect(applyCommand(["--plan", planFile, "--root", root])).rejects.toThrow(
      /use --yes for unattended runs/,
    );
    await expect(applyCommand(["--plan", planFile, "--root", root])).rejects.toBeInstanceOf(UsageError);
    await expect(applyCommand(["--root", root, "--yes"])).rejects.toThrow(/answer file or --plan/);
    await expect(applyCommand(["--plan", planFile, "--confirm-timeout", "soon", "--yes"])).rejects.toThrow(
      /--confirm-timeout/,
    );
    const bad = path.join(path.dirname(planFile), "bad.json");
    await writeFile(
      bad,
      JSON.stringify({
        schema: "kvmstrap.plan/1",
        actions: [
          {
            kind: "write-file",
            id: "x",
            summary: "",
            effect: "none",
            path: "rel",
            content: "",
            mode: 420,
            previous: null,
          },
        ],
      }),
    );
    await expect(applyCommand(["--plan", bad, "--yes", "--root", root])).rejects.toThrow(
      /actions\[0\]\.path: must be an absolute path/,
    );
    await expect(applyCommand(["--plan", bad, "--yes", "--root", root])).rejects.toBeInstanceOf(InputError);
    await expect(applyCommand(["--plan", "/nonexistent.json", "--yes"])).rejects.toThrow(/no such file/);
  });

  it("dry-run, apply with --events, a converging re-run, confirm with nothing pending, undo", async () => {
    const { root, dir, planFile, stateDir } = await fixture();
    const initial = await tree(root);
    const common = ["--root", root, "--state-dir", stateDir];
    expect(await applyCommand(["--plan", planFile, "--dry-run", ...common])).toBe(0);
    expect(await tree(root)).toEqual(initial);
    expect(stderr.join("")).toContain("[dry ] kvm.conf: would write /etc/modules-load.d/kvm.conf");

    const events = path.join(dir, "events.jsonl");
    expect(await applyCommand(["--plan", planFile, "--yes", "--events", events, ...common])).toBe(0);
    expect(await readFile(path.join(root, "etc/hostname"), "utf8")).toBe("kvm-01\n");
    const lines = (await readFile(events, "utf8"))
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: "run", phase: "STARTED" });
    expect(lines.at(-1)).toMatchObject({ type: "run", phase: "SUCCEEDED" });
    const log = await readFile(path.join(stateDir, "log/apply-events.jsonl"), "utf8");
    expect(log.trimEnd().split("\n")).toHaveLength(lines.length);

    expect(await applyCommand(["--plan", planFile, "--yes", ...common])).toBe(0);
    expect((await new Journal(stateDir).latestRun())?.actions.every((a) => a.status === "skipped")).toBe(
      true,
    );

    await expect(confirmCommand(["--state-dir", stateDir])).rejects.toThrow(/not awaiting confirmation/);
    await expect(undoCommand(common)).rejects.toThrow(/--yes/);
    expect(await undoCommand(["--yes", ...common])).toBe(0);
    expect(await tree(root)).toEqual(initial);
    await expect(undoCommand(["--yes", ...common])).rejects.toThrow(/nothing to undo/);
  });

  it("a failing step exits 1; --resume with nothing to resume is an input error", async () => {
    const { root, dir, stateDir } = await fixture();
    const plan = planOf([
      {
        kind: "run-command",
        id: "fails",
        summary: "fails",
        effect: "none",
        argv: ["false"],
        check: null,
        undo: null,
        remediation: "do not run false",
      },
    ]);
    const planFile = path.join(dir, "fail.json");
    await writeFile(planFile, JSON.stringify(plan));
    expect(await applyCommand(["--plan", planFile, "--yes", "--root", root, "--state-dir", stateDir])).toBe(
      1,
    );
    expect(stderr.join("")).toContain("fix: do not run false");
    await expect(
      applyCommand(["--resume", "--yes", "--root", root, "--state-dir", path.join(dir, "empty")]),
    ).rejects.toThrow(/nothing to resume/);
  });

  it("has help texts", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    expect(await applyCommand(["--help"])).toBe(0);
    expect(out).toHaveBeenCalledWith(APPLY_HELP);
    expect(APPLY_HELP).toContain("--confirm-timeout");
    expect(await undoCommand(["-h"])).toBe(0);
    expect(await confirmCommand(["-h"])).toBe(0);
  });
});
