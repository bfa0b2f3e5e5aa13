// The dead-man switch on a real kernel: a bridge takes over a veth port inside a network namespace
// under the confirm-or-revert gate. Unconfirmed, the port gets its address and route back and the
// bridge is gone; confirmed, the bridge keeps the port's MAC and address.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { applyPlan, confirmRun } from "../../src/apply/engine.js";
import { EventBus } from "../../src/apply/events.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Plan } from "../../src/plan/actions.js";
import { bridgeTakeoverActions } from "../../src/plan/network-live.js";
import type { NetBridge } from "../../src/plan/render/types.js";

const NS = `kvms-deadman-${process.pid}`;
const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8" });
const nsOk = spawnSync("ip", ["netns", "add", NS]).status === 0;
afterAll(() => {
  if (nsOk) spawnSync("ip", ["netns", "del", NS]);
});

function freshPort(): string {
  spawnSync("ip", ["-n", NS, "link", "del", "br0"]);
  spawnSync("ip", ["-n", NS, "link", "del", "vport"]);
  ip("-n", NS, "link", "add", "vport", "type", "veth", "peer", "name", "vpeer");
  ip("-n", NS, "address", "add", "10.77.0.2/24", "dev", "vport");
  ip("-n", NS, "link", "set", "vport", "up");
  ip("-n", NS, "link", "set", "vpeer", "up");
  ip("-n", NS, "route", "add", "default", "via", "10.77.0.1", "dev", "vport");
  return JSON.parse(ip("-n", NS, "-j", "link", "show", "vport"))[0].address as string;
}

const bridge: NetBridge = {
  name: "br0",
  ports: ["vport"],
  stp: false,
  vlanAware: false,
  dhcp: false,
  addresses: ["10.77.0.2/24"],
  gateway: "10.77.0.1",
};
const planOf = (mac: string): Plan => ({
  schema: "kvmstrap.plan/1",
  answerDigest: "test",
  actions: bridgeTakeoverActions(bridge, { name: "vport", mac }, NS),
  refusals: [],
  needsReboot: false,
});
const links = () =>
  JSON.parse(ip("-n", NS, "-j", "link", "show")) as { ifname: string; address: string; master?: string }[];
const addrsOf = (dev: string) =>
  (JSON.parse(ip("-n", NS, "-j", "address", "show", "dev", dev))[0]?.addr_info ?? [])
    .filter((a: { family: string }) => a.family === "inet")
    .map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`);
const defaultDev = () =>
  JSON.parse(ip("-n", NS, "-j", "route", "show", "default"))[0]?.dev as string | undefined;

describe.skipIf(!nsOk)("confirm-or-revert on a real bridge in a network namespace", () => {
  it("reverts by itself when nobody confirms: the port has its address and default route back", async () => {
    const mac = freshPort();
    const stateDir = mkdtempSync(path.join(tmpdir(), "kvmstrap-deadman-"));
    const events: string[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => {
      events.push(e.type === "run" ? `run:${e.phase}` : e.type);
    });
    const r = await applyPlan(planOf(mac), {
      target: new RootedTargetFs(stateDir),
      runner: new ExecaRunner(),
      stateDir,
      bus,
      confirm: { timeoutSeconds: 1 },
    });
    expect(r.status).toBe("reverted");
    expect(events).toContain("confirm-required");
    expect(events).toContain("reverted");
    expect(links().some((l) => l.ifname === "br0")).toBe(false);
    expect(addrsOf("vport")).toEqual(["10.77.0.2/24"]);
    expect(defaultDev()).toBe("vport");
  }, 30_000);

  it("keeps the bridge when confirmed in time: br0 has the port's MAC, address and default route", async () => {
    const mac = freshPort();
    const stateDir = mkdtempSync(path.join(tmpdir(), "kvmstrap-deadman-"));
    const bus = new EventBus();
    bus.subscribe((e) => {
      if (e.type === "confirm-required") void confirmRun(stateDir);
    });
    const r = await applyPlan(planOf(mac), {
      target: new RootedTargetFs(stateDir),
      runner: new ExecaRunner(),
      stateDir,
      bus,
      confirm: { timeoutSeconds: 10 },
    });
    expect(r.status).toBe("succeeded");
    const br = links().find((l) => l.ifname === "br0");
    expect(br?.address).toBe(mac);
    expect(links().find((l) => l.ifname === "vport")?.master).toBe("br0");
    expect(addrsOf("br0")).toEqual(["10.77.0.2/24"]);
    expect(addrsOf("vport")).toEqual([]);
    expect(defaultDev()).toBe("br0");
  }, 30_000);
});
if (!nsOk) it.skip("dead-man switch: `ip netns add` is not permitted here", () => {});
