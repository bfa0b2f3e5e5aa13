// The Apply screen driven by the real engine: a confirmed apply (root, live, "yes" typed) against a
// throw-away fixture root with a fake command runner, and the event reducer's confirm, revert,
// reboot and failure paths.
import { readFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type Progress, progressLines, reduce, start } from "../../src/tui/screens/apply-progress.js";
import { SCREENS } from "../../src/tui/screens.js";
import { scriptedRunner } from "../helpers/scripted-runner.js";
import { buildSriovHost, SRIOV } from "../helpers/sysfs-fixture.js";
import { ascii, drive, KEY } from "./helpers.js";

const fx = buildSriovHost();
afterAll(() => fx.cleanup());
// The commands an SR-IOV plan runs, and nothing else: the "is it enabled" check answers no (so the
// step runs), the changes succeed; any other command fails the step and is listed as unexpected.
const runner = scriptedRunner([
  { match: /^virsh net-define \/etc\/kvmstrap\/libvirt\/network-enp3s0f0-vfs\.xml$/ },
  { match: /^virsh net-autostart enp3s0f0-vfs$/ },
  { match: /^systemctl is-enabled --quiet kvmstrap-sriov\.service$/, exitCode: 1 },
  { match: /^systemctl enable kvmstrap-sriov\.service$/ },
]);

describe("tui Apply", () => {
  it("refuses a real apply in demo mode, then applies for real once root and confirmed", async () => {
    const draft = { version: 1 as const, sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 3 }] };
    const demo = await drive(fx.root, { draft, start: SCREENS.findIndex((s) => s.id === "review") });
    await demo.waitFor(/\d+ actions, 0 refused/);
    expect(await demo.press("n", "A")).toContain("only a dry run: a captured machine (demo mode)");
    demo.unmount();

    const stateDir = path.join(fx.root, "var/lib/kvmstrap");
    const d = await drive(fx.root, {
      draft,
      start: SCREENS.findIndex((s) => s.id === "review"),
      session: { demo: false, isRoot: true, runner, stateDir },
    });
    await d.waitFor(/\d+ actions, 0 refused/);
    await d.press("n", "A");
    expect(d.frame()).toContain("type yes to apply");
    await d.type("yes");
    await d.press(KEY.enter);
    const done = await d.waitFor("Apply finished");
    expect(done).toMatch(/\+ sriov\.\S+: .*\(\d+ ms\)/);
    expect(runner.unexpected).toEqual([]);
    expect(runner.ran).toContain("systemctl enable kvmstrap-sriov.service");
    const numvfs = readFileSync(path.join(fx.root, fx.pciPath(SRIOV.pf), "sriov_numvfs"), "utf8");
    expect(numvfs.trim()).toBe("3");
    expect(await d.press(KEY.enter)).toContain(`log: ${stateDir}/log/apply-events.jsonl`);
    d.unmount();
  });

  it("folds the event stream: confirm countdown, revert, reboot, failure with remediation", () => {
    const time = new Date().toISOString();
    let p: Progress = { ...start, phase: "running", dryRun: false };
    p = reduce(p, { type: "step", phase: "started", id: "net.bridge", summary: "bridge br0", time });
    p = reduce(p, {
      type: "step",
      phase: "finished",
      id: "net.bridge",
      summary: "bridge br0",
      time,
      durationMs: 12,
    });
    p = reduce(p, {
      type: "confirm-required",
      deadline: time,
      timeoutSeconds: 120,
      ids: ["net.bridge"],
      time,
    });
    expect(p.confirm?.ids).toEqual(["net.bridge"]);
    p = reduce(p, { type: "reverted", reason: "not confirmed in time", ids: ["net.bridge"], time });
    expect(p.confirm).toBeNull();
    p = reduce(p, {
      type: "step",
      phase: "failed",
      id: "kernel.grub",
      summary: "update grub",
      time,
      error: "update-grub exited 1",
      remediation: "Run update-grub by hand and read its output.",
    });
    p = reduce(p, { type: "reboot-required", ids: ["kernel.cmdline"], time });
    const text = progressLines(p, ascii)
      .map((l) => l.text)
      .join("\n");
    expect(text).toContain("+ net.bridge: bridge br0 (12 ms)");
    expect(text).toContain("x kernel.grub: update grub");
    expect(text).toContain("error: update-grub exited 1");
    expect(text).toContain("fix: Run update-grub by hand");
    expect(text).toContain("reverted net.bridge: not confirmed in time");
    expect(text).toContain("REBOOT NEEDED for kernel.cmdline");
  });
});
