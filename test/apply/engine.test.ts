import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, symlink } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyPlan, undoLastRun } from "../../src/apply/engine.js";
import { type ApplyEvent, EventBus } from "../../src/apply/events.js";
import { Journal } from "../../src/apply/journal.js";
import { sysfsValue } from "../../src/apply/steps.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Action } from "../../src/plan/actions.js";
import { planOf, populate, tempDir, tree, writeFileAction } from "./helpers.js";

const runner = new ExecaRunner();

async function setup() {
  const root = await tempDir();
  const stateDir = await tempDir("kvmstrap-state-");
  const outside = await tempDir("kvmstrap-outside-");
  await populate(root, {
    "etc/modprobe.d/existing.conf": "old\n",
    "etc/obsolete.conf": "bye\n",
    "etc/state/keep.txt": "keep\n",
    "sys/module/kvm/parameters/halt_poll_ns": "200000\n",
  });
  const counter = path.join(outside, "runs.log");
  const actions: Action[] = [
    writeFileAction("kvm.existing", "/etc/modprobe.d/existing.conf", "options kvm ignore_msrs=1\n", {
      previous: "old\n",
    }),
    writeFileAction("kvm.new", "/etc/new/dir/kvm.conf", "kvm\n", { mode: 0o600 }),
    {
      kind: "remove-file",
      id: "old.remove",
      summary: "remove obsolete",
      effect: "none",
      path: "/etc/obsolete.conf",
      previous: "bye\n",
    },
    {
      kind: "write-sysfs",
      id: "kvm.halt-poll",
      summary: "halt_poll_ns=0",
      effect: "none",
      path: "/sys/module/kvm/parameters/halt_poll_ns",
      value: "0",
      previous: "200000",
    },
    {
      kind: "run-command",
      id: "cmd.checked",
      summary: "make the marker",
      effect: "none",
      argv: ["sh", "-c", 'echo made > "$KVMSTRAP_ROOT/etc/state/marker"'],
      check: ["sh", "-c", 'test -e "$KVMSTRAP_ROOT/etc/state/marker"'],
      undo: ["sh", "-c", 'rm -f "$KVMSTRAP_ROOT/etc/state/marker"'],
    },
    {
      kind: "run-command",
      id: "cmd.unchecked",
      summary: "count runs",
      effect: "none",
      argv: ["sh", "-c", `echo run >> "${counter}" && echo on > "$KVMSTRAP_ROOT/etc/state/flag"`],
      check: null,
      undo: ["sh", "-c", 'rm -f "$KVMSTRAP_ROOT/etc/state/flag"'],
    },
  ];
  return { root, stateDir, counter, plan: planOf(actions), target: new RootedTargetFs(root) };
}

const collect = () => {
  const events: ApplyEvent[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => {
    events.push(e);
  });
  return { events, bus };
};

describe("applyPlan into a temporary root", () => {
  it("applies every kind of action, converges on a re-run, and undo restores the exact prior tree", async () => {
    const { root, stateDir, counter, plan, target } = await setup();
    const initial = await tree(root);

    const first = await applyPlan(plan, { target, runner, stateDir });
    expect(first.status).toBe("succeeded");
    expect(first.counts).toEqual({ done: 6, skipped: 0, failed: 0 });
    const read = (p: string) => readFile(path.join(root, p), "utf8");
    expect(await read("etc/modprobe.d/existing.conf")).toBe("options kvm ignore_msrs=1\n");
    expect(await read("var/lib/kvmstrap/backup/etc/modprobe.d/existing.conf")).toBe("old\n");
    expect(await read("var/lib/kvmstrap/backup/etc/obsolete.conf")).toBe("bye\n");
    expect(existsSync(path.join(root, "etc/obsolete.conf"))).toBe(false);
    expect(await read("sys/module/kvm/parameters/halt_poll_ns")).toBe("0\n");
    expect(await read("etc/state/marker")).toBe("made\n");
    const applied = await tree(root);
    expect(applied["etc/new/dir/kvm.conf"]).toBe("f 600 kvm\n");
    expect(Object.keys(applied).some((k) => k.includes(".kvmstrap-tmp-"))).toBe(false);

    const { events, bus } = collect();
    const second = await applyPlan(plan, { target, runner, stateDir, bus });
    expect(second.status).toBe("succeeded");
    expect(second.counts).toEqual({ done: 0, skipped: 6, failed: 0 });
    expect(events.filter((e) => e.type === "step" && e.phase === "skipped")).toHaveLength(6);
    expect(await tree(root)).toEqual(applied);
    expect((await readFile(counter, "utf8")).trim().split("\n")).toHaveLength(1); // the check-less command ran once

    const undo = await undoLastRun({ target, runner, stateDir });
    expect(undo.status).toBe("undone");
    expect(undo.runId).toBe(first.runId); // the no-op run changed nothing, so the first run is undone
    expect(await tree(root)).toEqual(initial);
    expect((await new Journal(stateDir).load(first.runId))?.phase).toBe("undone");
    await expect(undoLastRun({ target, runner, stateDir })).rejects.toThrow(/nothing to undo/);

    // After undo the plan applies again from scratch.
    expect((await applyPlan(plan, { target, runner, stateDir })).counts.done).toBe(6);
    expect(await tree(root)).toEqual(applied);
  });

  it("journals every action with what it found before", async () => {
    const { stateDir, plan, target } = await setup();
    const r = await applyPlan(plan, { target, runner, stateDir });
    const run = await new Journal(stateDir).latestRun();
    expect(run?.runId).toBe(r.runId);
    expect(run?.phase).toBe("done");
    expect(run?.actions.map((a) => a.status)).toEqual(Array(6).fill("done"));
    expect(run?.actions[0]?.before).toMatchObject({ content: "old\n", mode: 0o644, origExisted: false });
    expect(run?.actions[1]?.before).toMatchObject({
      content: null,
      createdDirs: ["/etc/new", "/etc/new/dir"],
    });
    expect(run?.actions[3]?.before).toEqual({ content: "200000" });
  });

  it("dry-run touches nothing and reports every operation", async () => {
    const { root, stateDir, plan, target } = await setup();
    const before = await tree(root);
    const { events, bus } = collect();
    const r = await applyPlan(plan, { target, runner, stateDir, bus, dryRun: true });
    expect(r.status).toBe("dry-run");
    expect(await tree(root)).toEqual(before);
    expect(await tree(stateDir)).toEqual({});
    expect(r.operations.map((o) => [o.kind, o.id, o.state])).toEqual([
      ["write-file", "kvm.existing", "change"],
      ["write-file", "kvm.new", "change"],
      ["remove-file", "old.remove", "change"],
      ["write-sysfs", "kvm.halt-poll", "change"],
      ["run-command", "cmd.checked", "unknown"],
      ["run-command", "cmd.unchecked", "unknown"],
    ]);
    expect(r.operations[0]).toMatchObject({
      path: "/etc/modprobe.d/existing.conf",
      content: "options kvm ignore_msrs=1\n",
    });
    expect(r.operations[3]).toMatchObject({ path: "/sys/module/kvm/parameters/halt_poll_ns", value: "0" });
    expect(r.operations[4]).toMatchObject({
      argv: ["sh", "-c", 'echo made > "$KVMSTRAP_ROOT/etc/state/marker"'],
    });
    const steps = events.filter((e) => e.type === "step");
    expect(steps).toHaveLength(6);
    expect(steps.every((e) => e.type === "step" && e.phase === "skipped" && e.dryRun === true)).toBe(true);

    // Dry-run of an undo lists the inverses and changes nothing either.
    await applyPlan(plan, { target, runner, stateDir });
    const appliedTree = await tree(root);
    const u = await undoLastRun({ target, runner, stateDir, dryRun: true });
    expect(u.status).toBe("dry-run");
    expect(u.operations.map((o) => `${o.kind} ${o.id}`)).toEqual([
      "run-command cmd.unchecked",
      "run-command cmd.checked",
      "write-sysfs kvm.halt-poll",
      "write-file old.remove",
      "remove-file kvm.new",
      "write-file kvm.existing",
    ]);
    expect(await tree(root)).toEqual(appliedTree);
    // ...and, after a dry run, reports an applied plan as unchanged
    const again = await applyPlan(plan, { target, runner, stateDir, dryRun: true });
    expect(again.operations.slice(0, 4).every((o) => o.state === "unchanged")).toBe(true);
  });

  it("stops at a failing step with its remediation, and a re-run after the fix completes", async () => {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    const target = new RootedTargetFs(root);
    const plan = planOf([
      writeFileAction("a", "/etc/a.conf", "a\n"),
      {
        kind: "run-command",
        id: "needs-tool",
        summary: "needs a file",
        effect: "none",
        argv: ["sh", "-c", 'test -e "$KVMSTRAP_ROOT/etc/ready" || { echo "not ready" >&2; exit 3; }'],
        check: null,
        undo: null,
        remediation: "create /etc/ready, then run kvmstrap apply again",
      },
      writeFileAction("b", "/etc/b.conf", "b\n"),
    ]);
    const { events, bus } = collect();
    const r = await applyPlan(plan, { target, runner, stateDir, bus });
    expect(r.status).toBe("failed");
    expect(r.failedId).toBe("needs-tool");
    expect(r.error).toMatch(/exited with 3: not ready/);
    expect(r.remediation).toMatch(/create \/etc\/ready/);
    const failed = events.find((e) => e.type === "step" && e.phase === "failed");
    expect(failed).toMatchObject({
      id: "needs-tool",
      remediation: "create /etc/ready, then run kvmstrap apply again",
    });
    expect(events.at(-1)).toMatchObject({ type: "run", phase: "FAILED", remediation: expect.any(String) });
    expect(existsSync(path.join(root, "etc/b.conf"))).toBe(false);

    await populate(root, { "etc/ready": "" });
    const again = await applyPlan(plan, { target, runner, stateDir });
    expect(again.status).toBe("succeeded");
    expect(await readFile(path.join(root, "etc/b.conf"), "utf8")).toBe("b\n");
    // The fresh run took over from the failed one: undo removes a.conf too.
    await undoLastRun({ target, runner, stateDir });
    expect(await tree(root)).toEqual({ "etc/": "d 755", "etc/ready": "f 644 " });
  });

  it("sweeps temporary files a killed writer left, even next to files that need no change", async () => {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    const dead = spawnSync("true").pid ?? 999_999; // exited: its pid names a dead writer
    await populate(root, {
      "etc/a.conf": "a\n",
      [`etc/a.conf.kvmstrap-tmp-${dead}`]: "half",
      [`etc/b.conf.kvmstrap-tmp-${dead}`]: "half",
    });
    const plan = planOf([
      writeFileAction("a", "/etc/a.conf", "a\n"),
      writeFileAction("b", "/etc/b.conf", "b\n"),
    ]);
    const r = await applyPlan(plan, { target: new RootedTargetFs(root), runner, stateDir });
    expect(r.counts).toEqual({ done: 1, skipped: 1, failed: 0 });
    expect(Object.keys(await tree(root)).sort()).toEqual(["etc/", "etc/a.conf", "etc/b.conf"]);
  });

  it("refuses a path that leads outside the target root through a symlink", async () => {
    const root = await tempDir();
    const outside = await tempDir("kvmstrap-outside-");
    await populate(root, { "etc/.keep": "" });
    await symlink(outside, path.join(root, "etc/escape"));
    const target = new RootedTargetFs(root);
    await expect(target.writeAtomic("/etc/escape/x.conf", "x", 0o644)).rejects.toThrow(
      /outside the target root/,
    );
    expect(await tree(outside)).toEqual({});
  });

  it("reads sysfs choice attributes by their bracketed value", () => {
    expect(sysfsValue("always [madvise] never\n")).toBe("madvise");
    expect(sysfsValue("200000\n")).toBe("200000");
  });
});
