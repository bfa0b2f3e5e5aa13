// HA with fencing on real corosync and pacemaker, configured from what kvmstrap plans (ha-rig.ts):
// two test hosts each run libvirtd, corosync and pacemaker in their own namespaces, with corosync.conf,
// the CIB's configuration and the VM's domain XML taken from planHa's actions and the CIB loaded by
// the plan's own cibadmin command. Each member's fence device is the test agent fence_kvmstrap_test,
// whose power controller really kills the fenced host's whole PID namespace. A counter guest (disk in
// a directory both hosts see) runs on A, its preferred member. Then A dies (its namespace's init
// killed: libvirtd, qemu, corosync and pacemaker with it). B must fence A, and only then start the VM:
// the fence is in pacemaker's history, the power controller's record of it precedes the start of the
// VM's qemu process on B, only one such process exists, and the counter runs on B. Then, on a fresh
// pair, a partition: A's link goes down while A still runs the VM; B fences A (its namespace gone)
// before starting the VM, so only one side keeps it.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { counters } from "./counter-guest.js";
import type { HaNode } from "./ha-hosts.js";
import { formAndStart, type HaRig, killAAndRecover, startHaRig } from "./ha-rig.js";

let rig: HaRig;
let rig2: HaRig | undefined;
let rigStopped = false;

/** HA_CRM_MON_DIR=DIR keeps crm_mon's XML samples (test/host/fixtures/crm-mon/ came from here). */
async function keepSample(name: string, node: HaNode | string) {
  const dir = process.env.HA_CRM_MON_DIR;
  if (dir)
    await writeFile(path.join(dir, `${name}.xml`), typeof node === "string" ? node : await node.crmMonXml());
}

beforeAll(async () => {
  rig = await startHaRig();
}, 90_000);

afterAll(async () => {
  if (!rigStopped) await rig?.stop();
  await rig2?.stop();
});

describe("HA on corosync and pacemaker with fencing", () => {
  it("fences a killed host before its VM starts on the survivor, where the counter runs", async () => {
    const { formedMs, running } = await formAndStart(rig);
    expect(running.stonithEnabled).toBe(true);
    await keepSample("running-on-a", rig.b);
    const c = rig.cluster;
    expect((await execa("virsh", ["-c", c.b.localUri, "list", "--all", "--name"])).stdout).not.toContain(
      rig.vm,
    );

    const f = await killAAndRecover(rig);
    await keepSample("after-failover", rig.b);
    const fence = f.status.fencing.find((e) => e.target === "kvmcl-a");
    expect(fence, JSON.stringify(f.status.fencing)).toMatchObject({ status: "success", delegate: "kvmcl-b" });
    expect(f.status.nodes.find((n) => n.name === "kvmcl-a")).toMatchObject({ online: false, unclean: false });
    // The power controller did it (so through the agent), before the VM's qemu started on B.
    expect(f.fencedAt).not.toBeNull();
    expect(f.fencedAt ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(f.startedAt);
    if (fence?.completedAt)
      expect(Math.floor(fence.completedAt.getTime() / 1000)).toBeLessThanOrEqual(
        Math.floor(f.startedAt / 1000),
      );
    expect(f.qemuProcesses).toBe(1);
    // The counter runs on B.
    const first = counters(await rig.serial(c.b)).length;
    await sleep(1000);
    expect(counters(await rig.serial(c.b)).length).toBeGreaterThan(first + 10);
    console.log(
      `HA: cluster formed in ${formedMs} ms; A killed -> fenced ${(f.fencedAt ?? 0) - f.killedAt} ms, ` +
        `VM's qemu started on B ${Math.round(f.startedAt - f.killedAt)} ms, started per crm_mon ${f.recoveredAt - f.killedAt} ms`,
    );
  });

  it("on a partition, only one side keeps the VM: B fences A (still running) before starting it", async () => {
    await rig.stop();
    rigStopped = true;
    rig2 = await startHaRig();
    await formAndStart(rig2);
    const a = rig2.cluster.a;
    const f = await killAAndRecover(rig2, "partition");
    // A was running until B's fence powered it off: its namespace is gone now.
    expect(f.fencedAt).not.toBeNull();
    expect(() => process.kill(a.daemon.pid, 0)).toThrow();
    expect(f.fencedAt ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(f.startedAt);
    expect(f.qemuProcesses).toBe(1);
    expect(f.status.fencing.find((e) => e.target === "kvmcl-a")).toMatchObject({ status: "success" });
    const first = counters(await rig2.serial(rig2.cluster.b)).length;
    await sleep(1000);
    expect(counters(await rig2.serial(rig2.cluster.b)).length).toBeGreaterThan(first + 10);
    console.log(
      `HA partition: A fenced ${(f.fencedAt ?? 0) - f.killedAt} ms after its link went down, ` +
        `the VM's qemu started on B at ${Math.round(f.startedAt - f.killedAt)} ms`,
    );
  });
});
