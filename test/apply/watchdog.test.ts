// The network watchdog around the real CLI (bin/kvmstrap.js from dist/), on a temporary machine root
// whose network change is a file: what happens when the apply process dies at each point of a
// network group, when the same or another apply is run again, and when the apply process's own timer
// and the watchdog reach the deadline together. The real-kernel version is netns-deadman.test.ts.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { EventBus } from "../../src/apply/events.js";
import { Journal } from "../../src/apply/journal.js";
import { revertUnconfirmed } from "../../src/apply/network-gate.js";
import { defaultWatchdog, systemdRunArgs } from "../../src/apply/watchdog.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Action } from "../../src/plan/actions.js";
import { alive, awaitingConfirm, BIN, cli, latest, reached, until } from "./deadman-helpers.js";
import { planOf, populate, tempDir, writeFileAction } from "./helpers.js";

const net = (id: string, p: string, content: string, previous: string | null = null) =>
  writeFileAction(id, p, content, { effect: "network", previous });

async function machine(actions: Action[] = [net("net.bridge", "/etc/net/bridge.conf", "br0\n")]) {
  const root = await tempDir();
  const stateDir = path.join(root, "var/lib/kvmstrap");
  await populate(root, { "etc/net/uplink.conf": "eno1\n" });
  const planFile = path.join(root, "..", `${path.basename(root)}.plan.json`);
  await writeFile(planFile, JSON.stringify(planOf(actions)));
  const apply = (timeout: number, env: NodeJS.ProcessEnv = {}, plan = planFile) =>
    cli(
      ["apply", "--plan", plan, "--root", root, "--online", "--yes", "--confirm-timeout", String(timeout)],
      env,
    );
  return { root, stateDir, planFile, apply };
}

describe("the network watchdog of the CLI", () => {
  it("kill -9 in the middle of the network group: the watchdog reverts once the window would have closed", async () => {
    const { root, stateDir, apply } = await machine([
      net("net.uplink", "/etc/net/uplink.conf", "br0 port\n", "eno1\n"),
      net("net.bridge", "/etc/net/bridge.conf", "br0\n"),
    ]);
    // Each side effect waits 1.5 s, so the kill lands between the two network writes.
    const run1 = apply(2, { KVMSTRAP_TEST_STEP_DELAY_MS: "1500" });
    const run = await until("the first network write", () => {
      const r = latest(stateDir);
      return r?.actions[0]?.status === "done" && r.actions[1]?.status !== "done" ? r : undefined;
    }).catch((e: Error) => {
      throw new Error(`${e.message}; apply said: ${run1.stderr()}`);
    });
    run1.child.kill("SIGKILL");
    await run1.exited;
    expect(await readFile(path.join(root, "etc/net/uplink.conf"), "utf8")).toBe("br0 port\n");
    const fallback = Date.parse(run.watchdog?.fallbackDeadline as string);
    const after = await reached(stateDir, "reverted", 15_000);
    expect(Date.now()).toBeGreaterThanOrEqual(fallback);
    expect(Date.now() - fallback).toBeLessThan(4_000);
    expect(after).toMatchObject({ revertedBy: "watchdog" });
    expect(after?.error).toMatch(/stopped in the middle of the network changes/);
    expect(await readFile(path.join(root, "etc/net/uplink.conf"), "utf8")).toBe("eno1\n");
    expect(existsSync(path.join(root, "etc/net/bridge.conf"))).toBe(false);
  }, 40_000);

  it("a re-run before the deadline goes back to waiting on the same run; confirm keeps it and the watchdog exits", async () => {
    const { root, stateDir, apply } = await machine();
    const first = apply(8);
    const run = await awaitingConfirm(stateDir, first);
    const watchdog = run.watchdog?.pid;
    first.child.kill("SIGKILL");
    await first.exited;
    // A hang-up does not reach the watchdog (own session) and would not stop it (SIGHUP ignored).
    process.kill(watchdog as number, "SIGHUP");
    const again = apply(8);
    await until("the re-run to wait", () => again.stderr().includes('run "kvmstrap confirm"'));
    expect(again.stderr()).toContain(`apply ${run.runId}: started (resumed)`);
    const resumed = latest(stateDir);
    expect(resumed).toMatchObject({ runId: run.runId, phase: "awaiting-confirm", deadline: run.deadline });
    expect(resumed?.watchdog?.pid).toBe(watchdog); // still alive: not armed twice
    expect(alive(watchdog)).toBe(true);
    const confirm = cli(["confirm", "--root", root]);
    expect((await confirm.exited).code).toBe(0);
    expect(confirm.stderr()).not.toContain("no longer running"); // the re-run goes on by itself
    expect((await again.exited).code).toBe(0);
    expect(latest(stateDir)?.phase).toBe("done");
    await until("the watchdog to exit", () => !alive(watchdog), 5_000);
    expect(await readFile(path.join(root, "etc/net/bridge.conf"), "utf8")).toBe("br0\n");
  }, 40_000);

  it("confirmed after the apply was killed: the watchdog keeps the change and exits; a re-run finishes the plan", async () => {
    const { root, stateDir, apply } = await machine([
      net("net.bridge", "/etc/net/bridge.conf", "br0\n"),
      writeFileAction("after", "/etc/after.conf", "later\n"),
    ]);
    const first = apply(4);
    const run = await awaitingConfirm(stateDir, first);
    first.child.kill("SIGKILL");
    await first.exited;
    const confirm = cli(["confirm", "--root", root]);
    expect((await confirm.exited).code).toBe(0);
    expect(confirm.stderr()).toContain("run the same apply again to finish the plan");
    await until("the watchdog to exit", () => !alive(run.watchdog?.pid), 5_000);
    await new Promise((r) =>
      setTimeout(r, Math.max(0, Date.parse(run.deadline as string) - Date.now() + 500)),
    );
    expect(await readFile(path.join(root, "etc/net/bridge.conf"), "utf8")).toBe("br0\n");
    expect(existsSync(path.join(root, "etc/after.conf"))).toBe(false);
    const again = apply(4);
    expect((await again.exited).code).toBe(0);
    expect(again.stderr()).not.toContain("kvmstrap confirm"); // nothing changed on the network
    expect(await readFile(path.join(root, "etc/after.conf"), "utf8")).toBe("later\n");
  }, 40_000);

  it("another plan is refused while a run awaits confirmation, and applies once the watchdog reverted it", async () => {
    const { root, stateDir, apply } = await machine();
    const first = apply(3);
    const run = await awaitingConfirm(stateDir, first);
    first.child.kill("SIGKILL");
    await first.exited;
    const otherPlan = path.join(root, "..", `${path.basename(root)}.other.json`);
    await writeFile(otherPlan, JSON.stringify(planOf([writeFileAction("other", "/etc/other.conf", "x\n")])));
    const refused = apply(3, {}, otherPlan);
    expect((await refused.exited).code).toBe(2);
    expect(refused.stderr()).toContain(`run ${run.runId} awaits confirmation of its network changes until`);
    await reached(stateDir, "reverted", 10_000);
    expect(existsSync(path.join(root, "etc/net/bridge.conf"))).toBe(false);
    // Too late to confirm: said so, nothing changes back.
    const late = cli(["confirm", run.runId, "--root", root]);
    expect((await late.exited).code).toBe(2);
    expect(late.stderr()).toMatch(
      /is reverted, not awaiting confirmation: no confirmation by .* reverted by the watchdog/,
    );
    const other = apply(3, {}, otherPlan);
    expect((await other.exited).code).toBe(0);
    expect(await readFile(path.join(root, "etc/other.conf"), "utf8")).toBe("x\n");
  }, 40_000);

  it("the apply process's own revert and the watchdog's, at the same instant, revert once", async () => {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    const counter = path.join(stateDir, "reloads");
    const reload: Action = {
      kind: "run-command",
      id: "net.reload-on-revert",
      summary: "reload on revert",
      effect: "network",
      argv: ["true"],
      undo: ["sh", "-c", `echo reload >> ${counter}`],
      check: null,
    };
    const plan = planOf([reload, net("net.bridge", "/etc/net/bridge.conf", "br0\n")]);
    const journal = new Journal(stateDir);
    const run = journal.create(plan);
    run.actions = run.actions.map((a) => ({ ...a, status: "done", before: { content: null } }));
    run.gates = [];
    await journal.setPhase(run, "awaiting-confirm", { deadline: new Date().toISOString(), pendingGate: 1 });
    await populate(root, { "etc/net/bridge.conf": "br0\n" });
    const ctx = {
      target: new RootedTargetFs(root),
      runner: new ExecaRunner(),
      stateDir,
      bus: new EventBus(),
    };
    const outcomes = await Promise.all([
      revertUnconfirmed(ctx, run.runId, "apply", "timer", 1),
      revertUnconfirmed(ctx, run.runId, "watchdog", "watchdog", 1),
    ]);
    expect(outcomes.sort()).toEqual(["nothing-to-revert", "reverted"]);
    expect(await readFile(counter, "utf8")).toBe("reload\n");
    expect(existsSync(path.join(root, "etc/net/bridge.conf"))).toBe(false);
    expect((await journal.load(run.runId))?.phase).toBe("reverted");
  }, 20_000);

  it("arms a systemd transient timer when systemd is PID 1, a detached process otherwise", () => {
    const args = systemdRunArgs(
      {
        runId: "20261205T180000.000Z-abcdef",
        stateDir: "/var/lib/kvmstrap",
        root: "/",
        notBefore: new Date(120_000),
      },
      new Date(0),
    );
    expect(args.slice(0, 3)).toEqual([
      "--unit=kvmstrap-revert-20261205T180000_000Z-abcdef",
      "--on-active=120s",
      "--timer-property=AccuracySec=1s",
    ]);
    expect(args).toContain("--collect");
    expect(args.slice(args.indexOf("--") + 2)).toEqual([
      BIN,
      "apply",
      "--revert-network",
      "20261205T180000.000Z-abcdef",
      "--root",
      "/",
      "--state-dir",
      "/var/lib/kvmstrap",
    ]);
    const init = existsSync("/run/systemd/system") ? "systemd-timer" : "process";
    expect(defaultWatchdog(new ExecaRunner(), "/").kind).toBe(init);
    // Another root's watcher runs here, not on that machine's systemd.
    expect(defaultWatchdog(new ExecaRunner(), "/mnt/target").kind).toBe("process");
  });
});
