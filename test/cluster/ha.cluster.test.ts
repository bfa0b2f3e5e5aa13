// HA with fencing on real corosync and pacemaker, configured from what kvmstrap plans (ha-rig.ts):
// two test hosts each run libvirtd, corosync and pacemaker in their own namespaces, with corosync.conf,
// the CIB's configuration and the VM's domain XML taken from planHa's actions and the CIB loaded by
// the plan's own cibadmin command. Each member's fence device is the test agent fence_kvmstrap_test,
// whose power controller really kills the fenced host's whole PID namespace. A counter guest (disk in
// a directory both hosts see) runs on A, its preferred member. Then a partition: A's link goes down
// while A still runs the VM; B fences A (its namespace gone) before starting the VM, so only one side
// keeps it. (A host that dies outright, fenced before its VM starts on a survivor, is the last step of
// walkthrough.cluster.test.ts, on three members.)
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { counters } from "./counter-guest.js";
import type { HaNode } from "./ha-hosts.js";
import { formAndStart, type HaRig, killAAndRecover, startHaRig } from "./ha-rig.js";

let rig: HaRig;

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
  await rig?.stop();
});

describe("HA on corosync and pacemaker with fencing", () => {
  it("on a partition, only one side keeps the VM: B fences A (still running) before starting it", async () => {
    const { running } = await formAndStart(rig);
    expect(running.stonithEnabled).toBe(true);
    await keepSample("running-on-a", rig.b);
    const a = rig.cluster.a;
    const f = await killAAndRecover(rig, "partition");
    await keepSample("after-failover", rig.b);
    // A was running until B's fence powered it off: its namespace is gone now.
    expect(f.fencedAt).not.toBeNull();
    expect(() => process.kill(a.daemon.pid, 0)).toThrow();
    expect(f.fencedAt ?? Number.POSITIVE_INFINITY).toBeLessThanOrEqual(f.startedAt);
    expect(f.qemuProcesses).toBe(1);
    expect(f.status.fencing.find((e) => e.target === "kvmcl-a")).toMatchObject({ status: "success" });
    const first = counters(await rig.serial(rig.cluster.b)).length;
    await sleep(1000);
    expect(counters(await rig.serial(rig.cluster.b)).length).toBeGreaterThan(first + 10);
    console.log(
      `HA partition: A fenced ${(f.fencedAt ?? 0) - f.killedAt} ms after its link went down, ` +
        `the VM's qemu started on B at ${Math.round(f.startedAt - f.killedAt)} ms`,
    );
  });
});
