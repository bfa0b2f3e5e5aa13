// Live migration on a shared NFS store where the kernel has no NFS client: nfs-ganesha (user space,
// FSAL VFS, NFSv3 with rpcbind; nfs-export.ts) in a storage namespace on the migration network exports
// an empty directory, where the VM's plan on A makes its disk file and writes the counter guest's
// image onto it over libnfs (kvmstrap vm fill-disk). kvmstrap's plan for the store on each host (mode auto on the
// host's report, applied by the built `kvmstrap apply --plan`) has nothing to do there: no pool,
// because the VM's disk is a qemu libnfs network disk (package qemu-block-extra). The guest runs on A, and the built `kvmstrap vm migrate --to B`
// without --copy-storage moves it: it runs on B, its counter continued without a gap, no disk was
// copied, and the file on the export holds the same bytes.
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Answer } from "../../src/answer/schema.js";
import { cluster as clusterSchema } from "../../src/answer/schema-cluster.js";
import { hostReport } from "../../src/detect/types.js";
import type { PlanContext } from "../../src/plan/context.js";
import { planStoreDiskFill } from "../../src/plan/store-disk-plan.js";
import {
  applyPlanOn,
  migrateNoCopy,
  migrateResult,
  planOf,
  removeEtcKvmstrapMountPoint,
  reportOf,
  serialOf,
  virsh,
} from "./cli.js";
import { counterDisk, counterDomain, counters, gaps } from "./counter-guest.js";
import { type Cluster, startCluster } from "./hosts.js";
import { startNfsExport } from "./nfs-export.js";
import { applyStorePlan, sharedDomain } from "./shared-store.js";
import { type StoreHost, startStoreHost, until } from "./store-host.js";

const VM = `kvmcl-nfs-${process.pid}`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let c: Cluster;
let store: StoreHost;
let disk: Buffer;
let exported: string;
let file: string;
let image: string;
const reports: Record<string, string> = {};

beforeAll(async () => {
  c = await startCluster();
  store = await startStoreHost(c.bridge, c.a.address.replace(/\.\d+$/, ".3"));
  exported = path.join(c.dir, "export");
  disk = counterDisk();
  image = path.join(c.dir, "counter.raw"); // the image, a raw file as an answer's vms[].image may name
  await writeFile(image, disk);
  file = path.join(exported, `${VM}.raw`); // made by the VM's plan below
  const t0 = Date.now();
  await startNfsExport(store, exported, c.dir);
  console.log(`NFS export ready in ${Date.now() - t0} ms`);

  const answer = clusterSchema.parse({
    name: "kvmcl",
    members: [
      { host: c.a.name, address: c.a.address },
      { host: c.b.name, address: c.b.address },
    ],
    networks: { cluster: `${c.a.address.replace(/\.\d+$/, ".0")}/24` },
    storage: [{ name: "nas1", type: "nfs", server: store.address, export: exported }],
  });
  for (const h of [c.a, c.b]) {
    reports[h.name] = await reportOf(h, path.join(c.dir, `${h.name}-report.json`));
    const report = hostReport.parse(JSON.parse(await readFile(reports[h.name] as string, "utf8")).report);
    // This kernel has no NFS client: mode auto plans no netfs pool (libnfs disks instead).
    if (report.storageClients?.nfsClient === false) {
      const t = Date.now();
      expect((await applyStorePlan(h, answer, report, c.dir)).poolTypes).toEqual({});
      console.log(`${h.name}: store plan (empty) applied by kvmstrap apply in ${Date.now() - t} ms`);
    }
    await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
  }
  // The VM's plan on its member A: its disk file made on the export and the image written onto it,
  // both over libnfs (kvmstrap vm fill-disk); nothing on the host mounts the export.
  const reportA = hostReport.parse(JSON.parse(await readFile(reports[c.a.name] as string, "utf8")).report);
  const ctx = { actions: [], refusals: [], findings: [], current: new Map() } as unknown as PlanContext;
  const entry = {
    name: VM,
    image,
    diskGiB: 1 / 128,
    store: { name: "nas1", volume: `${VM}.raw` },
    member: c.a.name,
  };
  planStoreDiskFill(ctx, { cluster: answer, vms: [entry] } as unknown as Answer, entry as never, reportA);
  const t = Date.now();
  await applyPlanOn(c.a, planOf(ctx.actions), c.dir, "fill-state");
  console.log(`nfs: disk made and the image written by kvmstrap apply in ${Date.now() - t} ms`);
  const made = await readFile(file);
  expect(made.length).toBe(8 * 2 ** 20); // diskGiB 1/128: a file of the VM's disk size
  expect(sha(made.subarray(0, disk.length))).toBe(sha(disk));
  const xml = path.join(c.dir, "guest.xml");
  await writeFile(
    xml,
    sharedDomain(counterDomain(VM, "unused"), {
      protocol: "nfs",
      name: `${exported}/${VM}.raw`,
      hosts: [{ name: store.address }],
    }),
  );
  const def = await virsh(c.a, "define", xml);
  expect(def.exitCode, def.stderr).toBe(0);
  const start = await virsh(c.a, "start", VM);
  expect(start.exitCode, start.stderr).toBe(0);
}, 60_000);

afterAll(async () => {
  await c?.stop();
  await store?.stop();
  await removeEtcKvmstrapMountPoint(); // the hosts' mounts on it went with their namespaces
});

describe("live migration on an NFS store (nfs-ganesha + qemu's libnfs)", () => {
  it("the guest's disk is a libnfs network disk on the export (qemu opened it over NFS)", async () => {
    const live = (await virsh(c.a, "dumpxml", VM)).stdout;
    expect(live).toMatch(/<disk type='network' device='disk'>/);
    expect(live).toContain(`<source protocol='nfs' name='${exported}/${VM}.raw'`);
    // qemu's own view of the block device: the nfs driver (libnfs), not a file on a mount.
    const block = await virsh(c.a, "qemu-monitor-command", VM, "--hmp", "info block");
    expect(block.stdout).toMatch(/nfs:\/\/|"driver": ?"nfs"/);
    await until("the counter on A", 10_000, async () => counters(await serialOf(c.a, VM)).length > 0);
  });

  it("kvmstrap vm migrate without --copy-storage moves the guest live: no gap, nothing copied, file intact", async () => {
    await sleep(1000);
    expect(counters(await serialOf(c.a, VM)).length).toBeGreaterThan(10);
    const r = await migrateNoCopy(c, VM, reports[c.b.name] as string);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const result = migrateResult(r.stdout);
    expect(result).toMatchObject({ outcome: "migrated", target: "kvmcl-b", copiedDisks: [] });
    expect((await virsh(c.b, "domstate", VM)).stdout.trim()).toBe("running");
    expect((await virsh(c.a, "list", "--all", "--name")).stdout.trim()).toBe("");
    await sleep(1000);
    const onB = await serialOf(c.b, VM);
    const all = counters(await serialOf(c.a, VM), onB);
    expect(counters(onB).length).toBeGreaterThan(10);
    expect(gaps(all)).toEqual([]);
    expect(all[0]).toBe(1);
    expect(sha((await readFile(file)).subarray(0, disk.length))).toBe(sha(disk));
    console.log(`nfs: migrated in ${result.wallMs} ms, downtime ${result.downtimeMs} ms`);
  });
});
