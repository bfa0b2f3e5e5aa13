// Live migration on shared iSCSI storage without copying a byte of disk: a user-space tgtd target
// (package tgt) in a storage namespace on the migration network serves a blank LUN 1, onto which the
// VM's plan on A writes the counter guest's image (kvmstrap vm fill-disk over libiscsi with CHAP; run
// again it leaves the LUN as it is, and a LUN 2 holding data is never written); both hosts carry out kvmstrap's plan for the store (planSharedStorage: mode auto on their
// own report, which on a kernel without iscsi_tcp is an iscsi-direct pool, libiscsi in libvirt and
// qemu; `vm migrate` refuses while B lacks it), applied by the built `kvmstrap apply --plan` inside
// each host's namespaces, with CHAP: the target asks for a password that kvmstrap's plan sets on a
// libvirt secret from the answer's passwordFile (never in the plan, apply's output or journal, or the
// domain XML); the guest runs on A from the pool's volume, and the built `kvmstrap vm migrate --to
// B` without --copy-storage moves it: it runs on B, its counter continued without a gap, no disk was
// copied, and the LUN holds the same bytes.
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Answer } from "../../src/answer/schema.js";
import { type Cluster as ClusterAnswer, cluster as clusterSchema } from "../../src/answer/schema-cluster.js";
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
import { type Cluster, type ClusterHost, startCluster } from "./hosts.js";
import { applyStorePlan, sharedDomain } from "./shared-store.js";
import { type StoreHost, startStoreHost, until } from "./store-host.js";

const VM = `kvmcl-iscsi-${process.pid}`;
const IQN = `iqn.2026-12.test.kvmstrap:lun-${process.pid}`;
const POOL = "san1";
const CHAP_USER = "kvmcl";
const CHAP_PASSWORD = `chap-${process.pid}-Secret12`;
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let c: Cluster;
let planOn: (h: ClusterHost) => Promise<void>;
let store: StoreHost;
let disk: Buffer;
let lun: string;
let lun2: string;
let lun2Data: Buffer;
let image: string;
let answer: ClusterAnswer;
const timings: Record<string, number> = {};
const reports: Record<string, string> = {};

beforeAll(async () => {
  c = await startCluster();
  store = await startStoreHost(c.bridge, c.a.address.replace(/\.\d+$/, ".3"));
  // The LUNs: 1 blank (the plan writes the guest's image onto it), 2 holding someone's data. The
  // image is the counter guest's disk, a raw file as an answer's vms[].image may name one.
  disk = counterDisk();
  image = path.join(c.dir, "counter.raw");
  await writeFile(image, disk);
  lun = path.join(c.dir, "lun1.raw");
  await writeFile(lun, Buffer.alloc(disk.length));
  lun2 = path.join(c.dir, "lun2.raw");
  lun2Data = randomBytes(disk.length);
  await writeFile(lun2, lun2Data);
  const t0 = Date.now();
  store.daemon("tgtd", ["-f", "--iscsi", `portal=${store.address}:3260`]);
  const tgtadm = (...args: string[]) => store.exec("tgtadm", ["--lld", "iscsi", ...args]);
  await until("tgtd's control socket", 10_000, async () => {
    await tgtadm("--op", "show", "--mode", "sys");
    return true;
  });
  await tgtadm("--op", "new", "--mode", "target", "--tid", "1", "-T", IQN);
  await tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "1", "-b", lun);
  await tgtadm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", "2", "-b", lun2);
  await tgtadm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL");
  await tgtadm("--op", "new", "--mode", "account", "--user", CHAP_USER, "--password", CHAP_PASSWORD);
  await tgtadm("--op", "bind", "--mode", "account", "--tid", "1", "--user", CHAP_USER);
  const passwordFile = path.join(c.dir, "chap-password");
  await writeFile(passwordFile, CHAP_PASSWORD, { mode: 0o600 });
  console.log(`iSCSI target ready in ${Date.now() - t0} ms`);

  answer = clusterSchema.parse({
    name: "kvmcl",
    members: [
      { host: c.a.name, address: c.a.address },
      { host: c.b.name, address: c.b.address },
    ],
    networks: { cluster: `${c.a.address.replace(/\.\d+$/, ".0")}/24` },
    storage: [
      {
        name: POOL,
        type: "iscsi",
        portal: store.address,
        target: IQN,
        chap: { username: CHAP_USER, passwordFile },
      },
    ],
  });
  // A first; B's plan is applied by the test after the refusal below.
  planOn = async (h: ClusterHost) => {
    reports[h.name] = await reportOf(h, path.join(c.dir, `${h.name}-report.json`));
    const report = hostReport.parse(JSON.parse(await readFile(reports[h.name] as string, "utf8")).report);
    const t = Date.now();
    const applied = await applyStorePlan(h, answer, report, c.dir);
    console.log(`${h.name}: store plan applied by kvmstrap apply in ${Date.now() - t} ms`);
    expect(applied.planJson).not.toContain(CHAP_PASSWORD);
    expect(applied.texts.length).toBeGreaterThan(2); // the plan, apply's output, its journal
    for (const t of applied.texts) expect(t.includes(CHAP_PASSWORD)).toBe(false);
    expect(applied.poolTypes).toEqual({ [POOL]: report.storageClients?.iscsiTcp ? "iscsi" : "iscsi-direct" });
  };
  await planOn(c.a);
  // The VM's plan on its member A: the image onto its blank LUN (kvmstrap vm fill-disk, over
  // libiscsi with CHAP), and nothing onto LUN 2, which holds data.
  const reportA = hostReport.parse(JSON.parse(await readFile(reports[c.a.name] as string, "utf8")).report);
  const fill = async () => {
    const ctx = { actions: [], refusals: [], findings: [], current: new Map() } as unknown as PlanContext;
    for (const [name, volume] of [
      [VM, "unit:0:0:1"],
      [`${VM}-2`, "unit:0:0:2"],
    ] as const) {
      const entry = { name, image, diskGiB: 1, store: { name: POOL, volume }, member: c.a.name };
      planStoreDiskFill(ctx, { cluster: answer, vms: [entry] } as unknown as Answer, entry as never, reportA);
    }
    expect(ctx.actions.map((a) => a.id)).toEqual([`vm.${VM}.disk-fill`, `vm.${VM}-2.disk-fill`]);
    const applied = await applyPlanOn(c.a, planOf(ctx.actions), c.dir, "fill-state");
    for (const t of applied.texts) expect(t.includes(CHAP_PASSWORD)).toBe(false);
    return applied;
  };
  let t = Date.now();
  const first = await fill();
  timings.fill = Date.now() - t;
  expect(first.output).toContain(`vm.${VM}.disk-fill`);
  expect(sha(await readFile(lun))).toBe(sha(disk));
  expect(sha(await readFile(lun2))).toBe(sha(lun2Data));
  // Again: LUN 1 now holds data (the image) and is left as it is, as LUN 2 is: not a byte written.
  const written = (await stat(lun)).mtimeMs;
  t = Date.now();
  await fill();
  expect((await stat(lun)).mtimeMs).toBe(written);
  timings.fillAgain = Date.now() - t;
  expect(sha(await readFile(lun))).toBe(sha(disk));
  expect(sha(await readFile(lun2))).toBe(sha(lun2Data));
  console.log(
    `iscsi: image written onto the blank LUN by kvmstrap apply in ${timings.fill} ms; run again (left as it is) ${timings.fillAgain} ms`,
  );
  reports[c.b.name] = await reportOf(c.b, path.join(c.dir, `${c.b.name}-report.json`));
  for (const h of [c.a, c.b]) await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
  const vols = await virsh(c.a, "vol-list", POOL);
  expect(vols.stdout).toContain("unit:0:0:1");
  const xml = path.join(c.dir, "guest.xml");
  await writeFile(xml, sharedDomain(counterDomain(VM, "unused"), { pool: POOL, volume: "unit:0:0:1" }));
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

describe("live migration on an iSCSI store (tgtd + iscsi-direct, CHAP)", () => {
  it("the target refuses a login without CHAP (so the pool's login below used the secret)", async () => {
    const r = await c.a.daemon
      .nsExec("qemu-img", ["info", `iscsi://${store.address}/${IQN}/1`])
      .catch((e) => e);
    expect(r).toBeInstanceOf(Error);
  });

  it("refuses before starting while B lacks the pool the guest's disk is a volume of (exit 2)", async () => {
    const r = await migrateNoCopy(c, VM, reports[c.b.name] as string);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(2);
    // --json: the refusal is the result line on stdout.
    expect(r.stdout).toContain(`disk vda is a volume of pool \\"${POOL}\\", which is not active on kvmcl-b`);
    expect((await virsh(c.a, "domstate", VM)).stdout.trim()).toBe("running");
  });

  it("both hosts run kvmstrap's pool plan: the pool is active, autostarted, and shows the LUN", async () => {
    await planOn(c.b);
    for (const h of [c.a, c.b]) {
      const info = await virsh(h, "pool-info", POOL);
      expect(info.stdout).toMatch(/State:\s+running/);
      expect(info.stdout).toMatch(/Autostart:\s+yes/);
      expect((await virsh(h, "vol-list", POOL)).stdout).toContain("unit:0:0:1");
    }
  });

  it("kvmstrap vm migrate without --copy-storage moves the guest live: no gap, nothing copied, LUN intact", async () => {
    await sleep(1000);
    expect(counters(await serialOf(c.a, VM)).length).toBeGreaterThan(10);
    const r = await migrateNoCopy(c, VM, reports[c.b.name] as string);
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    const result = migrateResult(r.stdout);
    expect(result).toMatchObject({ outcome: "migrated", target: "kvmcl-b", copiedDisks: [] });
    expect(`${r.stdout}${r.stderr}`).not.toContain(CHAP_PASSWORD);
    expect((await virsh(c.b, "domstate", VM)).stdout.trim()).toBe("running");
    expect((await virsh(c.a, "list", "--all", "--name")).stdout.trim()).toBe("");
    const live = (await virsh(c.b, "dumpxml", VM)).stdout;
    expect(live).toContain(`<source pool='${POOL}' volume='unit:0:0:1'`);
    expect(live).not.toContain(CHAP_PASSWORD);
    expect((await virsh(c.b, "dumpxml", "--security-info", VM)).stdout).not.toContain(CHAP_PASSWORD);
    await sleep(1000);
    const onB = await serialOf(c.b, VM);
    const all = counters(await serialOf(c.a, VM), onB);
    expect(counters(onB).length).toBeGreaterThan(10);
    expect(gaps(all)).toEqual([]);
    expect(all[0]).toBe(1);
    expect(sha(await readFile(lun))).toBe(sha(disk));
    console.log(`iscsi: migrated in ${result.wallMs} ms, downtime ${result.downtimeMs} ms`);
  });
});
