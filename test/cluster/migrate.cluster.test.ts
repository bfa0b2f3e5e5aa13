// kvmstrap vm migrate between two real libvirtd hosts over TLS (test/cluster/hosts.ts), with the
// built CLI: a TCG guest that counts on its serial console is refused while host B lacks the bridge
// its NIC names (exit 2, nothing defined on B); once B has it, a try without copying the local disk
// fails in libvirt (exit 1, still running on A); then it moves with its disk copied: it runs on B,
// is gone from A, its counter went on without a gap or a repeat, its disk is the same.
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrateCli, reportOf, serialOf, virsh } from "./cli.js";
import { counterDisk, counterDomain, counters, gaps } from "./counter-guest.js";
import { type Cluster, startCluster } from "./hosts.js";

const VM = `kvmcl-guest-${process.pid}`;
const BRIDGE = "kvguest0";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let c: Cluster;
let disk: Buffer;

beforeAll(async () => {
  c = await startCluster();
  for (const h of [c.a, c.b]) {
    await mkdir(path.join(h.daemon.dirs.lib, "images"), { recursive: true });
    await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true }); // the serial log's directory
    // A pool over the images directory, so libvirt creates the copied disk's file on the target.
    await virsh(h, "pool-create-as", "images", "dir", "--target", "/var/lib/libvirt/images");
  }
  await c.a.daemon.nsExec("ip", ["link", "add", BRIDGE, "type", "bridge"]);
  await c.a.daemon.nsExec("ip", ["link", "set", BRIDGE, "up"]);
  disk = counterDisk();
  await writeFile(path.join(c.a.daemon.dirs.lib, `images/${VM}.raw`), disk);
  const xml = path.join(c.dir, "guest.xml");
  await writeFile(xml, counterDomain(VM, BRIDGE));
  const def = await virsh(c.a, "define", xml);
  expect(def.exitCode, def.stderr).toBe(0);
  const start = await virsh(c.a, "start", VM);
  expect(start.exitCode, start.stderr).toBe(0);
});

afterAll(async () => {
  await c?.stop();
});

const migrate = (report: string, ...more: string[]) => migrateCli(c, VM, report, ...more);

describe("kvmstrap vm migrate between two TLS hosts", () => {
  it("refuses before starting when the target lacks the bridge the VM's NIC names", async () => {
    const r = await migrate(await reportOf(c.b, path.join(c.dir, "b-report.json")), "--copy-storage");
    expect(r.exitCode, r.stderr).toBe(2);
    expect(r.stderr).toContain(`bridge "${BRIDGE}" does not exist on kvmcl-b`);
    expect(r.stderr).toContain("nothing was started");
    expect((await virsh(c.b, "list", "--all", "--name")).stdout.trim()).toBe("");
    expect((await virsh(c.a, "domstate", VM)).stdout.trim()).toBe("running");
  });

  it("a migration libvirt fails (local disks, no --copy-storage) exits 1 with libvirt's error; the guest stays on A", async () => {
    await c.b.daemon.nsExec("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    await c.b.daemon.nsExec("ip", ["link", "set", BRIDGE, "up"]);
    const r = await migrate(await reportOf(c.b, path.join(c.dir, "b-report-2.json")));
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^kvmstrap: migration of ${VM} failed: .+\n  ${VM} on this host: running$`),
    );
    expect((await virsh(c.a, "domstate", VM)).stdout.trim()).toBe("running");
    expect((await virsh(c.b, "list", "--all", "--name")).stdout.trim()).toBe("");
  });

  it("moves the running guest with its disk copied: it runs on B, is gone from A, no counter gap, same data", async () => {
    const report = path.join(c.dir, "b-report-2.json"); // B with the bridge, from the test before
    await sleep(1000); // the counter is well under way on A
    const before = counters(await serialOf(c.a, VM));
    expect(before.length).toBeGreaterThan(10);
    const r = await migrate(report, "--copy-storage", "--max-downtime", "300", "--json");
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const result = events.find((e) => e.event === "result");
    expect(result).toMatchObject({ outcome: "migrated", target: "kvmcl-b", copiedDisks: ["sda"] });
    // With --max-downtime the job is polled every 0.1 s until it is seen (then once a second): a
    // migration of 0.6 s and more shows at least one progress event.
    const progress = events.filter((e) => e.event === "progress");
    expect(progress.length).toBeGreaterThanOrEqual(1);
    expect(progress.every((e) => e.type === "Unbounded")).toBe(true);

    expect((await virsh(c.b, "domstate", VM)).stdout.trim()).toBe("running");
    expect((await virsh(c.a, "list", "--all", "--name")).stdout.trim()).toBe("");
    await sleep(1000);
    const onA = await serialOf(c.a, VM);
    const onB = await serialOf(c.b, VM);
    const all = counters(onA, onB);
    expect(counters(onB).length).toBeGreaterThan(10); // still counting, on B
    expect(gaps(all)).toEqual([]);
    expect(all[0]).toBe(1);

    const copied = await readFile(path.join(c.b.daemon.dirs.lib, `images/${VM}.raw`));
    expect(sha(copied.subarray(0, disk.length))).toBe(sha(disk));
    console.log(
      `migrated in ${result.wallMs} ms, downtime ${result.downtimeMs} ms, ${events.length - 1} progress events`,
    );
  });
});
