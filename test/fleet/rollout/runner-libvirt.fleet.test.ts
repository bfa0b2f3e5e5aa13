// The rollout runner with the real libvirt power driver (powerPort from each node's stored
// settings) on the VM tier's test-owned libvirtd: two diskless 64 MiB domains in one rack, a canary
// of one and waves of one. The first is turned on alone; the second only once the first verified.
// Skipped, visibly, where libvirtd, qemu or root are missing.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PowerSettings, powerPort } from "../../../src/fleet/power/index.js";
import { RolloutRunner } from "../../../src/fleet/rollout/runner.js";
import { type FleetStore, openPglite } from "../../../src/fleet/store/index.js";
import { RolloutStore } from "../../../src/fleet/store/rollouts.js";
import { VirshLibvirt } from "../../../src/vm/virsh-libvirt.js";
import { startTestLibvirtd, type TestLibvirtd } from "../../e2e/libvirtd.js";

const QEMU = "/usr/bin/qemu-system-x86_64";
const missing = [
  process.getuid?.() !== 0 && "root (the private libvirtd runs in its own namespaces)",
  !existsSync("/usr/sbin/libvirtd") && "libvirtd (libvirt-daemon-system)",
  !existsSync(QEMU) && QEMU,
].filter(Boolean);

const names = [`kvst-roll-${process.pid}-a`, `kvst-roll-${process.pid}-b`];
const xml = (name: string) => `<domain type="qemu">
  <name>${name}</name>
  <memory unit="MiB">64</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type><boot dev="network"/></os>
  <devices><emulator>${QEMU}</emulator></devices>
</domain>`;

async function until(what: string, fn: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(missing.length > 0)("the rollout runner powering libvirt domains on", () => {
  let daemon: TestLibvirtd | undefined;
  let lv: VirshLibvirt;
  let store: FleetStore | undefined;
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvmstrap-runner-lv-${process.pid}-`));
  beforeAll(async () => {
    daemon = await startTestLibvirtd();
    lv = new VirshLibvirt(daemon.uri);
    for (const n of names) await lv.defineDomain(xml(n));
    store = await openPglite(dir);
  });
  afterAll(async () => {
    await store?.close();
    await daemon?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("turns the canary on, then the next node once the canary verified", async () => {
    const s = store as FleetStore;
    const ids: number[] = [];
    for (const [i, domain] of names.entries()) {
      const { node } = await s.resolveNode(
        { serial: `LV-${i}`, macs: [`52:54:00:00:02:0${i}`] },
        { rack: "r1" },
      );
      await s.approve(node.id, "test");
      const settings: PowerSettings = { driver: "libvirt", domain, uri: daemon?.uri };
      await new RolloutStore(s).setPower(node.id, settings);
      ids.push(node.id);
    }
    const runner = new RolloutRunner({
      store: s,
      power: (_id, settings) => powerPort(settings as PowerSettings),
    });
    await runner.start();
    const v = await runner.create({
      canarySize: 1,
      waveSize: 1,
      maxInFlight: 1,
      maxInFlightPerRack: 1,
      failureThreshold: 0,
      powerOnIntervalMs: 0,
    });
    await until(
      "the canary's domain to run",
      async () => (await lv.domainState(names[0] as string)) === "running",
    );
    await runner.idle();
    expect(await lv.domainState(names[1] as string)).toBe("shut off");
    expect((await runner.view(v.id))?.nodes.map((n) => n.state)).toEqual(["booting", "waiting"]);
    await s.append({ type: "node-state", nodeId: ids[0], state: "verified", source: "pxe" });
    await until(
      "the second domain to run",
      async () => (await lv.domainState(names[1] as string)) === "running",
    );
    await s.append({ type: "node-state", nodeId: ids[1], state: "verified", source: "pxe" });
    await until("the rollout to finish", async () => (await runner.view(v.id))?.state === "done");
    await runner.stop();
    for (const n of names) await powerPort({ driver: "libvirt", domain: n, uri: daemon?.uri }).off();
  });
});

if (missing.length > 0)
  describe("the rollout runner powering libvirt domains on", () => {
    it.skip(`skipped: missing ${missing.join(", ")}`, () => {});
  });
