// A live migration on Ceph RBD shared storage, with real parts: the two TLS libvirtd hosts of
// test/cluster/hosts.ts and a one-node Ceph 16 (test/cluster/ceph.ts) on their migration network.
// The rbd store's plan actions (src/plan/rbd-plan.ts: the cephx secret, its value from the key file,
// the rbd pool) are applied on each host by the built `kvmstrap apply --plan`, run inside that host's
// namespaces. The counter guest's disk is made by the plan's VM disk actions applied the same way
// on A (its raw image converted into Ceph by qemu-img with the key file, a copy-on-write clone through
// libvirt's rbd pool, grown to size) and opened by qemu as a network disk that names the secret
// (src/vm/network-disk.ts). `kvmstrap vm migrate` without --copy-storage moves it live:
// it runs on B, its counter went on without a gap, the image holds the base's bytes then zeros.
// The key shows nowhere: not in the plan, apply's output and journal, the CLI's output, or either
// host's domain XML (even with --security-info); the secret is private (its value cannot be read).
// Then `kvmstrap undo` on A, which the VM left, takes A's secret and pool away; B keeps running it.
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { Plan } from "../../src/plan/actions.js";
import type { PlanContext } from "../../src/plan/context.js";
import { planRbdStorage, planRbdVmDisk, type RbdStore } from "../../src/plan/rbd-plan.js";
import { type NetworkDisk, renderNetworkDiskXml, secretUuidFor } from "../../src/vm/network-disk.js";
import { cephCidrFor, startTestCeph, type TestCeph } from "./ceph.js";
import {
  applyPlanOn,
  BIN,
  inHost,
  migrateNoCopy,
  migrateResult,
  planOf,
  removeEtcKvmstrapMountPoint,
  serialOf,
  virsh,
} from "./cli.js";
import { counterDisk, counterDomain, counters, gaps } from "./counter-guest.js";
import { type Cluster, type ClusterHost, startCluster } from "./hosts.js";

const VM = `kvrbd-guest-${process.pid}`;
const IMAGE = `${VM}-root`; // planRbdVmDisk's name for the VM's clone
const SIZE = 8 * 1024 * 1024; // the clone grown past the 4 MiB base
const CLUSTER = "rack-test";
const STORE = "ceph1";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let c: Cluster;
let ceph: TestCeph;
let disk: Buffer;
let work: string;
const seen: string[] = []; // every output and file the key must not appear in
const timings: Record<string, number | null> = {};

/** The store's plan, as a member plans it (the same on every member). */
function rbdPlan(store: string): { plan: Plan; store: RbdStore } {
  const answer = parseAnswerText(
    `version: 1
cluster:
  name: ${CLUSTER}
  networks: { cluster: ${c.a.address.replace(/\.\d+$/, ".0")}/24 }
  members:
    - { host: ${c.a.name}, address: ${c.a.address} }
    - { host: ${c.b.name}, address: ${c.b.address} }
  storage:
    - { name: ${STORE}, type: rbd, monitors: [${ceph.monitors.join(", ")}], pool: ${ceph.pool}, user: ${ceph.user}, keyFile: ${store} }
`,
    "answer.yaml",
  );
  const ctx = {
    answer,
    current: new Map(),
    actions: [],
    refusals: [],
    findings: [],
  } as unknown as PlanContext;
  planRbdStorage(ctx);
  const rbd = answer.cluster?.storage[0] as RbdStore;
  return { plan: planOf(ctx.actions), store: rbd };
}

/** The VM's disk on the store as the member deploying it plans it: base converted in, clone, size. */
function vmDiskPlan(store: RbdStore, imagePath: string): { plan: Plan; disk: NetworkDisk } {
  const ctx = { actions: [], current: new Map() } as unknown as PlanContext;
  const disk = planRbdVmDisk(ctx, CLUSTER, store, { name: VM, imagePath, sizeBytes: SIZE });
  return { plan: planOf(ctx.actions), disk };
}

/** Applies the plan on the host with the built CLI (cli.ts); what it showed and wrote joins `seen`. */
async function applyOn(h: ClusterHost, plan: Plan, journal = "state"): Promise<void> {
  seen.push(...(await applyPlanOn(h, plan, work, journal)).texts);
}

beforeAll(async () => {
  const t0 = Date.now();
  c = await startCluster();
  timings.cluster = Date.now() - t0;
  work = await mkdtemp(path.join(c.dir, "rbd-"));
  ceph = await startTestCeph({ bridge: c.bridge, cidr: cephCidrFor(c.a.address) });
  timings.ceph = ceph.startMs;
  for (const h of [c.a, c.b]) await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
  disk = counterDisk();
  await writeFile(path.join(work, "base.raw"), disk); // the base image the VM's disk is cloned from
}, 120_000);

afterAll(async () => {
  await c?.stop();
  await ceph?.stop();
  await removeEtcKvmstrapMountPoint(); // the hosts' mounts on it went with their namespaces
  console.log(`rbd test timings (ms): ${JSON.stringify(timings)}`);
});

describe("a live migration on Ceph RBD", () => {
  let store: RbdStore;
  let guestDisk: NetworkDisk;

  it("kvmstrap apply defines the cephx secret and the rbd pool on both hosts; the key is in no plan and no output", async () => {
    const { plan, store: s } = rbdPlan(ceph.keyFile);
    store = s;
    const t = Date.now();
    await Promise.all([applyOn(c.a, plan), applyOn(c.b, plan)]);
    timings.apply = Date.now() - t;
    const uuid = secretUuidFor(CLUSTER, STORE);
    for (const h of [c.a, c.b]) {
      const xml = await virsh(h, "secret-dumpxml", uuid);
      expect(xml.stdout).toContain("<usage type='ceph'>");
      // Private: libvirt never hands the value back, to kvmstrap or anyone else.
      const get = await virsh(h, "secret-get-value", uuid);
      expect(get.exitCode).not.toBe(0);
      expect(get.stdout).not.toContain(ceph.key);
      const pool = await virsh(h, "pool-info", STORE);
      expect(pool.stdout, pool.stderr).toMatch(/State:\s+running/);
    }
  });

  it("kvmstrap apply on A makes the VM's disk: the base converted into Ceph, a clone of it grown to size; B's pool lists it", async () => {
    const { plan, disk: d } = vmDiskPlan(store, path.join(work, "base.raw"));
    guestDisk = d;
    await applyOn(c.a, plan, "vm-state"); // its own journal: the store's run stays the one undo reverts
    const info = JSON.parse(await ceph.rbd("info", IMAGE, "--format", "json"));
    expect(info.size).toBe(SIZE);
    expect(info.parent?.image).toMatch(/^kvmstrap-base-base\.raw-/); // copy-on-write, not a copy
    // The pool reached Ceph with the secret on the other member too.
    await virsh(c.b, "pool-refresh", STORE);
    const vols = await virsh(c.b, "vol-list", STORE);
    expect(vols.stdout, vols.stderr).toContain(IMAGE);
  });

  it("the guest runs on A from a network disk on the rbd image", async () => {
    const network = renderNetworkDiskXml(guestDisk);
    const xml = counterDomain(VM, "unused")
      .replace(/ {4}<disk [\s\S]*?<\/disk>/, network)
      .replace(/ {4}<interface [\s\S]*?<\/interface>\n/, "");
    expect(xml).toContain('protocol="rbd"');
    const file = path.join(work, "guest.xml");
    await writeFile(file, xml);
    const def = await virsh(c.a, "define", file);
    expect(def.exitCode, def.stderr).toBe(0);
    const start = await virsh(c.a, "start", VM);
    expect(start.exitCode, start.stderr).toBe(0);
    for (let i = 0; i < 50 && counters(await serialOf(c.a, VM)).length < 20; i++) await sleep(100);
    expect(counters(await serialOf(c.a, VM)).length).toBeGreaterThanOrEqual(20);
  });

  it("kvmstrap vm migrate without --copy-storage moves it live to B: no counter gap, the image intact", async () => {
    const report = path.join(work, "b-report.json");
    const det = await inHost(c.b, ["node", BIN, "detect", "--json"]);
    await writeFile(report, det.stdout);
    const r = await migrateNoCopy(c, VM, report);

    seen.push(r.stdout, r.stderr);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const result = migrateResult(r.stdout);
    expect(result).toMatchObject({ outcome: "migrated", target: "kvmcl-b", copiedDisks: [] });
    timings.migrateWall = result.wallMs;
    timings.downtime = result.downtimeMs;

    expect((await virsh(c.b, "domstate", VM)).stdout.trim()).toBe("running");
    expect((await virsh(c.a, "list", "--all", "--name")).stdout.trim()).toBe("");
    await sleep(1000);
    const all = counters(await serialOf(c.a, VM), await serialOf(c.b, VM));
    expect(counters(await serialOf(c.b, VM)).length).toBeGreaterThan(10); // still counting, on B
    expect(gaps(all)).toEqual([]);
    expect(all[0]).toBe(1);

    const out = path.join(work, "exported.raw");
    await ceph.rbd("export", IMAGE, out);
    const image = await readFile(out);
    expect(image.length).toBe(SIZE);
    expect(sha(image.subarray(0, disk.length))).toBe(sha(disk));
    expect(image.subarray(disk.length).every((b) => b === 0)).toBe(true);
  });

  it("the key is in neither host's domain XML, the plan, apply's output or journal, nor migrate's output", async () => {
    for (const h of [c.a, c.b]) {
      for (const extra of [[], ["--security-info"]]) {
        const x = await virsh(h, "dumpxml", ...extra, VM);
        if (x.exitCode === 0) seen.push(x.stdout);
      }
    }
    const b = await virsh(c.b, "dumpxml", "--security-info", VM);
    expect(b.stdout).toContain(`uuid='${secretUuidFor(CLUSTER, STORE)}'`);
    expect(seen.length).toBeGreaterThan(6);
    for (const s of seen) expect(s.includes(ceph.key)).toBe(false);
    // The key as libvirt holds it (decoded bytes) shows nowhere either.
    const raw = Buffer.from(ceph.key, "base64").toString("latin1");
    for (const s of seen) expect(s.includes(raw)).toBe(false);
    timings.cephRssMiB = Math.round((await ceph.rssKiB()) / 1024);
  });

  it("kvmstrap undo on A (the VM gone from it) removes A's secret and pool; B and its running guest are untouched", async () => {
    const uuid = secretUuidFor(CLUSTER, STORE);
    const r = await inHost(c.a, [
      "node",
      BIN,
      "undo",
      "--yes",
      "--state-dir",
      path.join(work, `${c.a.name}-state`),
    ]);
    seen.push(r.stdout, r.stderr);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect((await virsh(c.a, "secret-dumpxml", uuid)).exitCode).not.toBe(0);
    expect((await virsh(c.a, "pool-info", STORE)).exitCode).not.toBe(0);
    expect((await virsh(c.b, "secret-dumpxml", uuid)).exitCode).toBe(0);
    expect((await virsh(c.b, "domstate", VM)).stdout.trim()).toBe("running");
    for (const s of seen) expect(s.includes(ceph.key)).toBe(false);
  });
});
