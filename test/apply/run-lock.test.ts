// Undo takes the run's lock, like the network watchdog and confirm do: while another party holds it
// (a watchdog reverting the same run), undo waits, then works on the journal as that party left it.
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyPlan, undoLastRun } from "../../src/apply/engine.js";
import { withRunLock } from "../../src/apply/run-lock.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { planOf, tempDir, writeFileAction } from "./helpers.js";

describe("the run lock", () => {
  it("undo waits for the holder of the run's lock, then undoes", async () => {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    const target = new RootedTargetFs(root);
    const runner = new ExecaRunner();
    const applied = await applyPlan(planOf([writeFileAction("a", "/etc/a.conf", "a\n")]), {
      target,
      runner,
      stateDir,
    });
    expect(applied.status).toBe("succeeded");

    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    let lockTaken = () => {};
    const taken = new Promise<void>((r) => (lockTaken = r));
    const holder = withRunLock(stateDir, applied.runId, async () => {
      lockTaken();
      await held;
    });
    await taken;
    let undone = false;
    const undo = undoLastRun({ target, runner, stateDir }).then((r) => {
      undone = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(undone).toBe(false);
    expect(existsSync(path.join(root, "etc/a.conf"))).toBe(true);
    release();
    await holder;
    expect((await undo).status).toBe("undone");
    expect(existsSync(path.join(root, "etc/a.conf"))).toBe(false);
  });
});
