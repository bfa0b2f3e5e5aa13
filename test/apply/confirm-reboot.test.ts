import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  applyPlan,
  confirmRun,
  resumeAfterReboot,
  undoLastRun,
  verifyAfterReboot,
} from "../../src/apply/engine.js";
import { type ApplyEvent, EventBus } from "../../src/apply/events.js";
import { Journal, StateError } from "../../src/apply/journal.js";
import type { HostReport } from "../../src/detect/types.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { alive, until } from "./deadman-helpers.js";
import { planOf, populate, tempDir, tree, writeFileAction } from "./helpers.js";

const runner = new ExecaRunner();

function collect() {
  const events: ApplyEvent[] = [];
  const bus = new EventBus();
  bus.subscribe((e) => {
    events.push(e);
  });
  return { events, bus };
}

async function networkSetup() {
  const root = await tempDir();
  const stateDir = await tempDir("kvmstrap-state-");
  await populate(root, {
    "etc/netplan/01-uplink.yaml": "network: {version: 2, ethernets: {eno1: {dhcp4: true}}}\n",
  });
  const plan = planOf([
    writeFileAction("host.sysctl", "/etc/sysctl.d/90-kvm.conf", "vm.swappiness=10\n"),
    writeFileAction(
      "net.uplink",
      "/etc/netplan/01-uplink.yaml",
      "network: {version: 2, bridges: {br0: {}}}\n",
      {
        effect: "network",
        previous: "network: {version: 2, ethernets: {eno1: {dhcp4: true}}}\n",
      },
    ),
    writeFileAction("net.bridge", "/etc/netplan/02-br0.yaml", "bridge\n", { effect: "network" }),
  ]);
  return { root, stateDir, plan, target: new RootedTargetFs(root) };
}

describe("confirm-or-revert timer for network actions", () => {
  it("reverts every network action when nothing confirms before the deadline", async () => {
    const { root, stateDir, plan, target } = await networkSetup();
    const before = await tree(root);
    const { events, bus } = collect();
    const t0 = Date.now();
    const r = await applyPlan(plan, {
      target,
      runner,
      stateDir,
      bus,
      confirm: { timeoutSeconds: 1, pollMs: 50 },
    });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
    expect(r.status).toBe("reverted");
    const confirmEvent = events.find((e) => e.type === "confirm-required");
    expect(confirmEvent).toMatchObject({ ids: ["net.uplink", "net.bridge"], timeoutSeconds: 1 });
    expect(events.find((e) => e.type === "reverted")).toMatchObject({ ids: ["net.bridge", "net.uplink"] });
    expect(events.at(-1)).toMatchObject({ type: "run", phase: "FAILED" });
    // The network files are back as they were (no .kvmstrap-orig left either); the rest stays.
    const after = await tree(root);
    expect(after["etc/netplan/01-uplink.yaml"]).toBe(before["etc/netplan/01-uplink.yaml"]);
    expect(after["etc/netplan/02-br0.yaml"]).toBeUndefined();
    expect(after["var/lib/kvmstrap/backup/etc/netplan/01-uplink.yaml"]).toBeUndefined();
    expect(after["etc/sysctl.d/90-kvm.conf"]).toBe("f 644 vm.swappiness=10\n");
    const run = await new Journal(stateDir).latestRun();
    expect(run?.phase).toBe("reverted");
    expect(run?.actions.map((a) => a.status)).toEqual(["done", "reverted", "reverted"]);
  });

  it("keeps the change when kvmstrap confirm arrives in time (through the confirm file)", async () => {
    const { root, stateDir, plan, target } = await networkSetup();
    const { events, bus } = collect();
    bus.subscribe((e) => {
      if (e.type === "confirm-required") setTimeout(() => void confirmRun(stateDir), 200);
    });
    const r = await applyPlan(plan, {
      target,
      runner,
      stateDir,
      bus,
      confirm: { timeoutSeconds: 2, pollMs: 50 },
    });
    expect(r.status).toBe("succeeded");
    expect(events.some((e) => e.type === "reverted")).toBe(false);
    expect(await readFile(path.join(root, "etc/netplan/02-br0.yaml"), "utf8")).toBe("bridge\n");
    expect((await new Journal(stateDir).latestRun())?.phase).toBe("done");
    await expect(confirmRun(stateDir)).rejects.toThrow(StateError); // nothing awaits confirmation now
    // Re-applying changes nothing and therefore asks for no confirmation.
    const { events: again, bus: bus2 } = collect();
    expect((await applyPlan(plan, { target, runner, stateDir, bus: bus2 })).counts.done).toBe(0);
    expect(again.some((e) => e.type === "confirm-required")).toBe(false);
  });

  it("a run left awaiting confirmation past its deadline (its watchdog gone too) is reverted by the next apply, which then retries", async () => {
    const { root, stateDir, plan, target } = await networkSetup();
    const before = await tree(root);
    const confirming = new EventBus();
    confirming.subscribe((e) => {
      if (e.type === "confirm-required") void confirmRun(stateDir);
    });
    const confirm = { timeoutSeconds: 5, pollMs: 20 };
    expect((await applyPlan(plan, { target, runner, stateDir, bus: confirming, confirm })).status).toBe(
      "succeeded",
    );
    // Rewind the journal to what a kill -9 during the wait leaves when the machine then rebooted (no
    // watchdog either): awaiting-confirm, not confirmed, deadline passed.
    const journal = new Journal(stateDir);
    const run = await journal.latestRun();
    if (!run) throw new Error("no run");
    run.actions[1] = { ...(run.actions[1] ?? { id: "net.uplink" }), status: "done" };
    // Its watchdog saw the confirmation and exits; wait for that, or it would take this revert.
    await until("the first run's watchdog to exit", () => !alive(run.watchdog?.pid), 5_000);
    run.gates = [];
    delete run.watchdog;
    await journal.setPhase(run, "awaiting-confirm", {
      deadline: new Date(Date.now() - 1000).toISOString(),
      confirmIds: ["net.uplink", "net.bridge"],
      pendingGate: 2,
    });
    const { events, bus } = collect();
    const reverted: string[] = [];
    bus.subscribe((e) => {
      if (e.type === "reverted") reverted.push(...e.ids);
      // What the file held when the retry asked for confirmation: the revert came first.
      if (e.type === "confirm-required") void confirmRun(stateDir);
    });
    const r = await applyPlan(plan, { target, runner, stateDir, bus, confirm });
    expect(reverted).toEqual(["net.bridge", "net.uplink"]);
    expect((await journal.load(run.runId))?.phase).toBe("reverted");
    // The retry is a new run that takes over the old one's prior state, so undo still goes back to it.
    expect(r).toMatchObject({ status: "succeeded" });
    expect(r.runId).not.toBe(run.runId);
    expect((await journal.load(r.runId))?.supersedes).toBe(run.runId);
    expect(events.filter((e) => e.type === "confirm-required")).toHaveLength(1);
    await undoLastRun({ target, runner, stateDir });
    expect((await tree(root))["etc/netplan/01-uplink.yaml"]).toBe(before["etc/netplan/01-uplink.yaml"]);
  });

  it("reverts at once when the interactive confirmation says no; a confirmation names its run", async () => {
    const { root, stateDir, plan, target } = await networkSetup();
    const before = await tree(root);
    await expect(confirmRun(stateDir, "some-older-run")).rejects.toThrow(StateError);
    const r = await applyPlan(plan, {
      target,
      runner,
      stateDir,
      confirm: { timeoutSeconds: 30, pollMs: 50, waitForConfirm: async () => false },
    });
    expect(r.status).toBe("reverted");
    const after = await tree(root);
    expect(after["etc/netplan/01-uplink.yaml"]).toBe(before["etc/netplan/01-uplink.yaml"]);
  });
});

describe("reboot and resume", () => {
  async function rebootSetup() {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    await populate(root, {
      "etc/default/grub": 'GRUB_CMDLINE_LINUX=""\n',
      "proc/sys/kernel/random/boot_id": "boot-1\n",
    });
    const plan = planOf([
      writeFileAction("kvm.modules", "/etc/modules-load.d/kvm.conf", "kvm\n"),
      writeFileAction(
        "kernel.cmdline",
        "/etc/default/grub",
        'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"\n',
        {
          effect: "reboot",
          previous: 'GRUB_CMDLINE_LINUX=""\n',
        },
      ),
      writeFileAction("vfio.bind", "/etc/kvmstrap/vfio.conf", "0000:01:00.0\n"),
    ]);
    return { root, stateDir, plan, target: new RootedTargetFs(root) };
  }

  it("stops at awaiting-reboot, refuses to resume in the same boot, then completes after the reboot", async () => {
    const { root, stateDir, plan, target } = await rebootSetup();
    const { events, bus } = collect();
    const first = await applyPlan(plan, { target, runner, stateDir, bus });
    expect(first.status).toBe("awaiting-reboot");
    expect(first.rebootIds).toEqual(["kernel.cmdline"]);
    expect(events.find((e) => e.type === "reboot-required")).toMatchObject({ ids: ["kernel.cmdline"] });
    const journal = new Journal(stateDir);
    expect((await journal.latestRun())?.phase).toBe("awaiting-reboot");
    expect((await journal.latestRun())?.bootId).toBe("boot-1");
    expect(await tree(root)).not.toHaveProperty("etc/kvmstrap/vfio.conf");

    // Applying again before the reboot goes no further.
    expect((await applyPlan(plan, { target, runner, stateDir })).status).toBe("awaiting-reboot");
    await expect(resumeAfterReboot({ target, runner, stateDir })).rejects.toThrow(/not rebooted/);

    await writeFile(path.join(root, "proc/sys/kernel/random/boot_id"), "boot-2\n");
    const { events: later, bus: bus2 } = collect();
    const resumed = await resumeAfterReboot({ target, runner, stateDir, bus: bus2 });
    expect(resumed.status).toBe("succeeded");
    expect(resumed.runId).toBe(first.runId);
    expect(later[0]).toMatchObject({ type: "run", phase: "STARTED", resumed: true });
    expect(await readFile(path.join(root, "etc/kvmstrap/vfio.conf"), "utf8")).toBe("0000:01:00.0\n");
    expect((await journal.latestRun())?.phase).toBe("done");

    // A converged re-run needs no reboot; undo takes all three back.
    const again = await applyPlan(plan, { target, runner, stateDir });
    expect(again).toMatchObject({ status: "succeeded", counts: { done: 0, skipped: 3 } });
    await undoLastRun({ target, runner, stateDir });
    expect(await readFile(path.join(root, "etc/default/grub"), "utf8")).toBe('GRUB_CMDLINE_LINUX=""\n');
  });

  it("a second apply of another plan while a run awaits its reboot is refused, and the first-boot resume still completes", async () => {
    const { root, stateDir, plan, target } = await rebootSetup();
    const first = await applyPlan(plan, { target, runner, stateDir });
    expect(first.status).toBe("awaiting-reboot");
    const other = planOf([writeFileAction("other", "/etc/other.conf", "x\n")]);
    await expect(applyPlan(other, { target, runner, stateDir })).rejects.toThrow(
      new RegExp(`run ${first.runId} awaits its reboot: reboot and let "kvmstrap apply --resume" finish it`),
    );
    expect(await tree(root)).not.toHaveProperty("etc/other.conf");
    // The first boot resumes the right run (it is still the latest) and finishes it.
    await writeFile(path.join(root, "proc/sys/kernel/random/boot_id"), "boot-2\n");
    const resumed = await resumeAfterReboot({ target, runner, stateDir });
    expect(resumed).toMatchObject({ status: "succeeded", runId: first.runId });
    expect(await readFile(path.join(root, "etc/kvmstrap/vfio.conf"), "utf8")).toBe("0000:01:00.0\n");
    // Once it is done, the other plan applies.
    expect((await applyPlan(other, { target, runner, stateDir })).status).toBe("succeeded");
  });

  it("resume fails with the mismatches when the running kernel lacks what the plan asked for", async () => {
    const { stateDir, plan, target } = await rebootSetup();
    await applyPlan(plan, { target, runner, stateDir });
    const r = await resumeAfterReboot({
      target,
      runner,
      stateDir,
      force: true,
      verify: async () => ["cmdline: intel_iommu=on absent"],
    });
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/intel_iommu=on absent/);
  });

  it("verifyAfterReboot compares /proc/cmdline tokens and vfio-pci bindings", () => {
    const report = {
      system: {
        cmdline: "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=off quiet intel_iommu=on iommu=soft",
      },
      iommu: { cmdline: null },
      pci: [
        { address: "0000:01:00.0", driver: "vfio-pci" },
        { address: "0000:02:00.0", driver: "nvidia" },
      ],
    } as unknown as HostReport;
    const m = verifyAfterReboot(
      {
        cmdlineParams: ["intel_iommu=on", "iommu=pt", "quiet", "kvm.ignore_msrs=1"],
        vfio: ["0000:01:00.0", "0000:02:00.0", "0000:03:00.0"],
      },
      report,
    );
    expect(m).toEqual([
      { kind: "cmdline", item: "iommu", expected: "iommu=pt", actual: "iommu=soft" },
      { kind: "cmdline", item: "kvm.ignore_msrs", expected: "kvm.ignore_msrs=1", actual: "absent" },
      { kind: "vfio", item: "0000:02:00.0", expected: "bound to vfio-pci", actual: "bound to nvidia" },
      { kind: "vfio", item: "0000:03:00.0", expected: "bound to vfio-pci", actual: "device not present" },
    ]);
  });

  it("verifyAfterReboot reports an IOMMU the plan enabled that the kernel still lacks", () => {
    const report = (groups: boolean) =>
      ({
        system: { cmdline: "intel_iommu=on" },
        iommu: { cmdline: null, groupsPopulated: groups },
        pci: [],
      }) as unknown as HostReport;
    const expected = { cmdlineParams: ["intel_iommu=on"], vfio: [], iommuGroups: true };
    expect(verifyAfterReboot(expected, report(true))).toEqual([]);
    expect(verifyAfterReboot(expected, report(false))).toEqual([
      expect.objectContaining({ kind: "iommu", item: "/sys/kernel/iommu_groups", expected: "IOMMU groups" }),
    ]);
  });
});
