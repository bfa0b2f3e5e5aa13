// Offline targets: `apply --root DIR` on an installer's target (not running) writes what belongs on
// its disk and defers what acts on a running kernel, network or service to the target's first boot,
// saying so; the first-boot resume then carries the deferred steps out, with no confirm window for a
// network nobody was connected through.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { resumeAfterReboot } from "../../src/apply/engine.js";
import { type ApplyEvent, EventBus } from "../../src/apply/events.js";
import { isOfflineTarget, liveOnlyReason } from "../../src/apply/offline.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Action } from "../../src/plan/actions.js";
import { cli, latest } from "./deadman-helpers.js";
import { planOf, populate, tempDir, writeFileAction } from "./helpers.js";

const command = (id: string, argv: string[], extra: Partial<Action> = {}): Action =>
  ({
    kind: "run-command",
    id,
    summary: id,
    effect: "none",
    argv,
    undo: null,
    check: null,
    ...extra,
  }) as Action;
const sysfs = (id: string, p: string, value: string, previous: string): Action => ({
  kind: "write-sysfs",
  id,
  summary: id,
  effect: "none",
  path: p,
  value,
  previous,
});

async function target() {
  const root = await tempDir("kvmstrap-target-");
  await populate(root, { "etc/hostname": "debian\n", "sys/kernel/mm/ksm/run": "0\n" });
  return root;
}

describe("apply to an offline target", () => {
  it("writes the files, defers the live-only steps to the first boot and says so (exit 0, no confirm wait)", async () => {
    const root = await target();
    const plan = planOf([
      writeFileAction("host.hostname", "/etc/hostname", "kvm-01\n", { previous: "debian\n" }),
      command("host.hostname-live", ["hostname", "kvm-01"], { undo: ["hostname", "debian"] }),
      sysfs("kvm.ksm-live", "/sys/kernel/mm/ksm/run", "1", "0"),
      command("kvm.modprobe", ["modprobe", "kvm_intel"], { effect: "module-reload" }),
      writeFileAction("network.file", "/etc/network/interfaces.d/kvmstrap", "auto br0\n", {
        effect: "network",
      }),
      command("network.reload", ["ifreload", "-a"], { effect: "network" }),
    ]);
    const planFile = path.join(root, "..", `${path.basename(root)}.plan.json`);
    await writeFile(planFile, JSON.stringify(plan));
    const t0 = Date.now();
    const r = cli(["apply", "--plan", planFile, "--root", root, "--yes"]);
    const { code } = await r.exited;
    expect(code, r.stderr()).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000); // no 120 s confirm window
    const err = r.stderr();
    expect(err).toContain("host.hostname-live: skipped on an offline target: sets the running hostname");
    expect(err).toContain(
      "kvm.ksm-live: skipped on an offline target: writes the running kernel's /sys/kernel/mm/ksm/run",
    );
    expect(err).toContain(
      "kvm.modprobe: skipped on an offline target: reloads modules of the running kernel",
    );
    expect(err).toContain("network.reload: skipped on an offline target: reloads the running network");
    expect(err).toContain("left for the first-boot resume");
    expect(err).not.toContain("kvmstrap confirm");
    // The disk has the new configuration; the (fake) running kernel was not touched.
    expect(await readFile(path.join(root, "etc/hostname"), "utf8")).toBe("kvm-01\n");
    expect(await readFile(path.join(root, "etc/network/interfaces.d/kvmstrap"), "utf8")).toBe("auto br0\n");
    expect(await readFile(path.join(root, "sys/kernel/mm/ksm/run"), "utf8")).toBe("0\n");
    const run = latest(path.join(root, "var/lib/kvmstrap"));
    expect(run).toMatchObject({ phase: "awaiting-reboot", offline: true });
    expect(run?.watchdog).toBeUndefined();
    expect(run?.rebootIds).toEqual(["host.hostname-live", "kvm.ksm-live", "kvm.modprobe", "network.reload"]);
    expect(run?.actions.map((a) => a.status)).toEqual([
      "done",
      "deferred",
      "deferred",
      "deferred",
      "done",
      "deferred",
    ]);
  }, 30_000);

  it("the first-boot resume carries the deferred steps out, without a confirm window", async () => {
    const root = await target();
    const stateDir = path.join(root, "var/lib/kvmstrap");
    const log = path.join(root, "ran");
    // Live-only by their effect; harmless on the test host, and they leave a trace.
    const plan = planOf([
      sysfs("kvm.ksm-live", "/sys/kernel/mm/ksm/run", "1", "0"),
      writeFileAction("network.file", "/etc/net.conf", "br0\n", { effect: "network" }),
      command("network.reload", ["sh", "-c", `echo reload >> ${log}`], { effect: "network" }),
    ]);
    const planFile = path.join(root, "..", `${path.basename(root)}.plan.json`);
    await writeFile(planFile, JSON.stringify(plan));
    const offline = cli(["apply", "--plan", planFile, "--root", root, "--yes", "--offline"]);
    expect((await offline.exited).code, offline.stderr()).toBe(0);
    expect(existsSync(log)).toBe(false);
    // First boot: the same journal, now on the running machine.
    const events: ApplyEvent[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => {
      events.push(e);
    });
    const resumed = await resumeAfterReboot({
      target: new RootedTargetFs(root),
      runner: new ExecaRunner(),
      stateDir,
      bus,
      watchdog: null,
    });
    expect(resumed.status).toBe("succeeded");
    expect(await readFile(log, "utf8")).toBe("reload\n");
    expect((await readFile(path.join(root, "sys/kernel/mm/ksm/run"), "utf8")).trim()).toBe("1");
    expect(events.some((e) => e.type === "confirm-required")).toBe(false);
    expect(latest(stateDir)?.actions.map((a) => a.status)).toEqual(["done", "done", "done"]);
  }, 30_000);

  it("offline is explicit: the default follows --root, --offline/--online override, both is a usage error", async () => {
    expect(isOfflineTarget("/")).toBe(false);
    expect(isOfflineTarget("/mnt/target")).toBe(true);
    expect(isOfflineTarget("/mnt/target", "online")).toBe(false);
    expect(isOfflineTarget("/", "offline")).toBe(true);
    const r = cli(["apply", "--plan", "x.json", "--offline", "--online", "--yes"]);
    expect((await r.exited).code).toBe(2);
    expect(r.stderr()).toContain("give --offline or --online, not both");
    // What is live-only: the running kernel, network and services; not files or enabling a unit.
    expect(liveOnlyReason(command("a", ["systemctl", "enable", "x.service"]))).toBeNull();
    expect(liveOnlyReason(command("b", ["systemctl", "restart", "x.service"]))).toMatch(/running systemd/);
    expect(liveOnlyReason(command("c", ["virsh", "net-define", "/etc/x.xml"]))).toMatch(/libvirtd/);
    expect(liveOnlyReason(command("d", ["update-grub"], { effect: "reboot" }))).toBeNull();
    expect(liveOnlyReason(writeFileAction("e", "/etc/x", "y"))).toBeNull();
  }, 20_000);
});
