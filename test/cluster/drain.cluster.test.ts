// kvmstrap host drain between two real libvirtd hosts over TLS (test/cluster/hosts.ts), with the
// built CLI: host A runs two counting TCG guests on a bridge both hosts have and a third whose NIC
// names a bridge only A has. The drain lists the third as not movable with its reason before moving
// anything, then moves the other two with their disks copied: both run on B, counting without a
// gap, their disks identical; only the third is left on A, still running.
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, reportOf, serialOf, virsh } from "./cli.js";
import { counterDisk, counterDomain, counters, gaps } from "./counter-guest.js";
import { type Cluster, type ClusterHost, startCluster } from "./hosts.js";

const MOVABLE = [`kvdr-one-${process.pid}`, `kvdr-two-${process.pid}`];
const STUCK = `kvdr-stuck-${process.pid}`;
const SHARED_BRIDGE = "kvguest0";
const A_ONLY_BRIDGE = "kvonlya0";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const names = async (h: ClusterHost) =>
  (await virsh(h, "list", "--all", "--name")).stdout.split("\n").filter(Boolean).sort();

let c: Cluster;
const disks = new Map<string, Buffer>();

async function bridge(h: ClusterHost, name: string) {
  await h.daemon.nsExec("ip", ["link", "add", name, "type", "bridge"]);
  await h.daemon.nsExec("ip", ["link", "set", name, "up"]);
}

beforeAll(async () => {
  c = await startCluster();
  for (const h of [c.a, c.b]) {
    await mkdir(path.join(h.daemon.dirs.lib, "images"), { recursive: true });
    await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
    await virsh(h, "pool-create-as", "images", "dir", "--target", "/var/lib/libvirt/images");
    await bridge(h, SHARED_BRIDGE);
  }
  await bridge(c.a, A_ONLY_BRIDGE);
  for (const [vm, br] of [...MOVABLE.map((v) => [v, SHARED_BRIDGE]), [STUCK, A_ONLY_BRIDGE]] as const) {
    const disk = counterDisk();
    disks.set(vm, disk);
    await writeFile(path.join(c.a.daemon.dirs.lib, `images/${vm}.raw`), disk);
    const xml = path.join(c.dir, `${vm}.xml`);
    await writeFile(xml, counterDomain(vm, br));
    const def = await virsh(c.a, "define", xml);
    expect(def.exitCode, def.stderr).toBe(0);
    const start = await virsh(c.a, "start", vm);
    expect(start.exitCode, start.stderr).toBe(0);
  }
});

afterAll(async () => {
  await c?.stop();
});

describe("kvmstrap host drain between two TLS hosts", () => {
  it("moves both movable guests to B with their disks, lists the one B cannot take and leaves it on A", async () => {
    const report = await reportOf(c.b, path.join(c.dir, "b-report.json"));
    await sleep(500); // the counters are under way on A

    const r = await execa(
      "node",
      [
        BIN,
        "host",
        "drain",
        "kvmcl-a",
        "--to",
        c.b.address,
        "--to-connect",
        c.b.tlsUri,
        "--connect",
        c.a.localUri,
        "--target-report",
        report,
        "--copy-storage",
      ],
      { reject: false, env: { LC_ALL: "C" } },
    );
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    // The plan comes before any move: the stuck VM and its reason, then the two moves in turn.
    const err = r.stderr.split("\n");
    const planAt = err.findIndex((l) => l.startsWith("Moving 2 VM(s):"));
    const stuckAt = err.indexOf(`Not movable, stays here: ${STUCK}`);
    expect(planAt, r.stderr).toBeGreaterThanOrEqual(0);
    expect(stuckAt).toBeGreaterThan(planAt);
    expect(err[stuckAt + 1]).toContain(`bridge "${A_ONLY_BRIDGE}" does not exist on kvmcl-b`);
    expect(err.findIndex((l) => l.startsWith("[1/2] "))).toBeGreaterThan(stuckAt);
    expect(err.findIndex((l) => l.startsWith("[2/2] "))).toBeGreaterThan(0);
    expect(r.stdout).toContain("kvmcl-a drained to kvmcl-b: 2 moved, 1 not movable");

    expect(await names(c.b)).toEqual([...MOVABLE].sort());
    expect(await names(c.a)).toEqual([STUCK]);
    expect((await virsh(c.a, "domstate", STUCK)).stdout.trim()).toBe("running");
    await sleep(600);
    for (const vm of MOVABLE) {
      expect((await virsh(c.b, "domstate", vm)).stdout.trim()).toBe("running");
      const all = counters(await serialOf(c.a, vm), await serialOf(c.b, vm));
      expect(counters(await serialOf(c.b, vm)).length, vm).toBeGreaterThan(5); // counting on B
      expect(gaps(all), vm).toEqual([]);
      const disk = disks.get(vm) as Buffer;
      const copied = await readFile(path.join(c.b.daemon.dirs.lib, `images/${vm}.raw`));
      expect(sha(copied.subarray(0, disk.length)), vm).toBe(sha(disk));
    }
    console.log(
      r.stderr
        .split("\n")
        .filter((l) => l.includes("now runs on"))
        .join("\n"),
    );
  });

  it("refuses a HOST that is not the host --connect reaches (exit 2, nothing moved)", async () => {
    const r = await execa(
      "node",
      [
        BIN,
        "host",
        "drain",
        "kvmcl-b",
        "--to",
        c.b.address,
        "--connect",
        c.a.localUri,
        "--target-report",
        path.join(c.dir, "b-report.json"),
      ],
      { reject: false, env: { LC_ALL: "C" } },
    );
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain('reaches host "kvmcl-a"');
    expect(await names(c.a)).toEqual([STUCK]);
  });
});
