// npm run bench:vm: VM deployment, side by side, medians and ratios from one run. Never timed
// assertions in tests. Needs root and the packages of scripts/setup-test-host.sh (virtinst included).
//   1. 10 VMs from one 2 GiB base until `virsh domstate` says running: kvmstrap's deployMany (qcow2
//      overlays on the base) against `cp` of the base + `virt-install --import --cloud-init` per VM,
//      both with the same concurrency against the same test-owned libvirtd (test/e2e/libvirtd.ts),
//      TCG, 256 MiB and 1 vCPU each, on the test network (target: kvmstrap >= 10x faster)
//   2. one kvmstrap deploy from a 1 GiB against an 8 GiB base (both filled with real data), 5 runs
//      each, interleaved (target: ratio ~1.0x, shown as within 0.8x-1.25x)
//   3. benchSeedBuild (render + ISO9660 + atomic write) (target: <= 10 ms median)
// Everything the bench writes lives in /var/tmp/kvmstrap-bench-* and is removed at the end, also on
// error or Ctrl-C; the test libvirtd's stop() kills every qemu it started.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build } from "esbuild";

// Every child gets the abort signal, so a Ctrl-C also ends a running cp, qemu-io or virt-install.
const abort = new AbortController();
const execFileP = promisify(execFile);
const run = (file, args, options = {}) => execFileP(file, args, { ...options, signal: abort.signal });
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const dist = (f) => import(pathToFileURL(path.join(root, "dist", f)).href);
const { deployMany, deleteVm } = await dist("vm/manage.js");
const { deployVm } = await dist("vm/deploy.js");
const { VirshLibvirt } = await dist("vm/libvirt.js");
const { renderSeed } = await dist("vm/cloud-init.js");
const { benchSeedBuild } = await dist("vm/seed-iso.js");
const { detectHost } = await dist("detect/index.js");
const { RootedHostFs } = await dist("host/fs.js");
const { EventBus } = await dist("apply/events.js");

const GiB = 2 ** 30;
const VMS = 10;
const CONCURRENCY = 4; // deployMany's default; the virt-install side gets the same
const SIZE_RUNS = 5;
const NET = { name: "kvmstrap-test", bridge: "kvmstrap-br0", gateway: "192.168.150.1" };
const USER = {
  name: "ops",
  sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyOnly ops@bench"],
  sudo: true,
};

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const ms = (x) => `${x.toFixed(2)} ms`;
const secs = (x) => `${(x / 1000).toFixed(2)} s`;
const rows = [];
const row = (name, value, target, ok) => rows.push({ name, value, target, ok });
const log = (m) => console.error(`[bench:vm] ${m}`);
const t0 = performance.now();

// The test libvirtd is TypeScript outside the build: bundled by esbuild into .cache/ as
// scripts/build-guest-image.mjs does (inside the repository so that its import of execa resolves).
mkdirSync(path.join(root, ".cache"), { recursive: true });
const bundleDir = mkdtempSync(path.join(root, ".cache", "bench-vm-"));
const benchDir = mkdtempSync("/var/tmp/kvmstrap-bench-");
let daemon;
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  abort.abort();
  if (daemon) await daemon.stop().catch((e) => log(`stopping the test libvirtd: ${e.message}`));
  rmSync(benchDir, { recursive: true, force: true });
  rmSync(bundleDir, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

try {
  if (process.getuid?.() !== 0) throw new Error("bench:vm needs root (a private libvirtd in namespaces)");
  for (const tool of ["virt-install", "virsh", "qemu-img", "qemu-io", "nsenter"]) {
    await run("sh", ["-c", `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is missing: run scripts/setup-test-host.sh (virt-install: Debian virtinst)`);
    });
  }
  const bundle = path.join(bundleDir, "libvirtd.mjs");
  await build({
    entryPoints: [path.join(root, "test/e2e/libvirtd.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    outfile: bundle,
    logLevel: "warning",
  });
  const { startTestLibvirtd } = await import(pathToFileURL(bundle).href);

  let t = performance.now();
  daemon = await startTestLibvirtd();
  log(`test libvirtd up in ${secs(performance.now() - t)}: ${daemon.uri}`);
  const uri = daemon.uri;
  const lv = new VirshLibvirt(uri);
  await lv.netDefine(`<network>
  <name>${NET.name}</name>
  <bridge name="${NET.bridge}" stp="off" delay="0"/>
  <ip address="${NET.gateway}" prefix="24"><dhcp><range start="192.168.150.100" end="192.168.150.200"/></dhcp></ip>
</network>
`);
  await lv.netStart(NET.name);
  const virsh = async (...args) =>
    (await run("virsh", ["-c", uri, ...args], { env: { ...process.env, LC_ALL: "C" } })).stdout.trim();
  /** Polls `virsh domstate` until it says running; returns when it does. */
  const untilRunning = async (name) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const state = await virsh("domstate", name).catch((e) => `error: ${e.message}`);
      if (state === "running") return;
      if (Date.now() > deadline) throw new Error(`${name} is not running after 60 s (domstate: ${state})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  /** Runs fn over items with at most n in flight. */
  const pool = async (items, n, fn) => {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i], i);
    };
    await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  };
  /** A qcow2 of SIZE GiB whose every byte is written (0xab), so it is that big on disk. */
  const makeBase = async (file, sizeGiB) => {
    const start = performance.now();
    await run("qemu-img", ["create", "-q", "-f", "qcow2", file, `${sizeGiB}G`]);
    const writes = Array.from({ length: sizeGiB }, (_, i) => ["-c", `write -q -P 0xab ${i}G 1G`]).flat();
    await run("qemu-io", ["-f", "qcow2", ...writes, file], { maxBuffer: 1 << 24 });
    const info = JSON.parse((await run("qemu-img", ["info", "--output=json", file])).stdout);
    const took = performance.now() - start;
    log(
      `base ${path.basename(file)}: ${(info["actual-size"] / GiB).toFixed(2)} GiB on disk, made in ${secs(took)}`,
    );
    return { file, took, actualSize: info["actual-size"] };
  };
  const report = await detectHost({ fs: new RootedHostFs("/") }); // no runner: no KVM probe, so TCG
  const vmDir = path.join(benchDir, "vms");
  const spec = (name, image, baseGiB) => ({
    name,
    image,
    vcpus: 1,
    memoryMiB: 256,
    diskGiB: baseGiB + 1,
    user: USER,
    nics: [{ kind: "network", network: NET.name }],
  });
  /** Destroys and undefines every domain, and removes every storage pool virt-install made. */
  const clearDaemon = async () => {
    for (const d of (await virsh("list", "--all", "--name")).split("\n").filter(Boolean)) {
      await virsh("destroy", d).catch(() => {});
      await virsh("undefine", d).catch(() => {});
    }
    for (const p of (await virsh("pool-list", "--all", "--name")).split("\n").filter(Boolean)) {
      await virsh("pool-destroy", p).catch(() => {});
      await virsh("pool-undefine", p).catch(() => {});
    }
    const left = await virsh("list", "--all", "--name");
    if (left) throw new Error(`domains left after cleanup: ${left}`);
  };

  // 1. Ten VMs from one 2 GiB base.
  const base2 = await makeBase(path.join(benchDir, "base-2g.qcow2"), 2);
  const names = Array.from({ length: VMS }, (_, i) => `bench-vm-${i}`);

  // 1a. kvmstrap: deployMany, each VM timed from its first step to `virsh domstate` running.
  const kStart = new Map();
  const kRunning = [];
  const kTimes = new Map();
  const bus = new EventBus();
  bus.subscribe((e) => {
    if (e.type !== "step") return;
    const m = /^vm\.(.+)\.(name|start)$/.exec(e.id);
    if (!m) return;
    if (m[2] === "name" && e.phase === "started") kStart.set(m[1], performance.now());
    if (m[2] === "start" && e.phase === "finished") {
      kRunning.push(untilRunning(m[1]).then(() => kTimes.set(m[1], performance.now() - kStart.get(m[1]))));
    }
  });
  const deps = { libvirt: lv, report, dir: vmDir, bus };
  t = performance.now();
  const results = await deployMany(
    names.map((n) => spec(n, base2.file, 2)),
    deps,
    { concurrency: CONCURRENCY },
  );
  const failed = results.filter((r) => !r.ok);
  if (failed.length)
    throw new Error(`kvmstrap deploy failed: ${failed.map((r) => `${r.name}: ${r.error.message}`)}`);
  await Promise.all(kRunning);
  const kWall = performance.now() - t;
  if (kTimes.size !== VMS) throw new Error(`only ${kTimes.size} of ${VMS} kvmstrap VMs reached running`);
  const kMedian = median([...kTimes.values()]);
  const stepIds = results[0].result.steps.map((st) => st.id);
  const perStep = stepIds.map((id) => {
    const d = results.map((r) => r.result.steps.find((st) => st.id === id)?.durationMs ?? 0);
    return `${id} ${median(d)} ms`;
  });
  log(`kvmstrap: ${VMS} running in ${secs(kWall)}, per VM median ${ms(kMedian)}`);
  log(`kvmstrap: median per deploy step: ${perStep.join(", ")}`);
  for (const n of names) await deleteVm(n, deps);
  await clearDaemon();

  // 1b. virt-install --import --cloud-init with a copy of the base per VM. virt-install runs inside
  // the test libvirtd's namespaces so that its scratch files (the cloud-init ISO, in
  // /var/lib/libvirt/boot when that exists) land in the private daemon's directories, not the host's.
  const copies = path.join(benchDir, "copies");
  const xdg = path.join(benchDir, "xdg-cache"); // virt-install's log and fallback scratch dir
  await mkdir(copies, { recursive: true });
  await mkdir(xdg, { recursive: true });
  // virt-install makes a storage pool for each directory that holds a disk or its cloud-init ISO,
  // and runs of it in parallel race on that ("pool ... already exists"). As an operator with a pool
  // for their disks would have, the two pools exist before the clock starts: the copies' directory
  // and the scratch directory /var/lib/libvirt/boot (created in the private daemon's tree).
  await mkdir(path.join(daemon.dirs.lib, "boot"), { recursive: true });
  for (const [pool, dir] of [
    ["bench-copies", copies],
    ["boot", "/var/lib/libvirt/boot"],
  ]) {
    await virsh("pool-define-as", pool, "dir", "--target", dir);
    await virsh("pool-start", pool);
  }
  const vTimes = [];
  t = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const start = performance.now();
    const seed = renderSeed({ hostname: name, user: USER });
    const userData = path.join(copies, `${name}.user-data`);
    const metaData = path.join(copies, `${name}.meta-data`);
    await writeFile(userData, seed.userData);
    await writeFile(metaData, seed.metaData);
    const disk = path.join(copies, `${name}.qcow2`);
    await run("cp", ["--reflink=never", base2.file, disk]);
    const args = [
      "--connect",
      uri,
      "--name",
      name,
      "--import",
      "--cloud-init",
      `user-data=${userData},meta-data=${metaData}`,
      "--virt-type",
      "qemu",
      "--memory",
      "256",
      "--vcpus",
      "1",
      "--osinfo",
      "linux2022",
      "--disk",
      `path=${disk},format=qcow2,bus=virtio`,
      "--network",
      `network=${NET.name},model=virtio`,
      "--graphics",
      "none",
      "--noautoconsole",
      "--wait",
      "0",
    ];
    await run("nsenter", ["-t", String(daemon.pid), "-m", "-n", "-p", "virt-install", ...args], {
      env: { ...process.env, LC_ALL: "C", XDG_CACHE_HOME: xdg },
      maxBuffer: 1 << 24,
    }).catch((e) => {
      throw new Error(`virt-install ${name}: ${e.stderr || e.message}`);
    });
    await untilRunning(name);
    vTimes.push(performance.now() - start);
  });
  const vWall = performance.now() - t;
  const vMedian = median(vTimes);
  log(`virt-install: ${VMS} running in ${secs(vWall)}, per VM median ${ms(vMedian)}`);
  await clearDaemon();
  await rm(copies, { recursive: true, force: true });
  await rm(base2.file, { force: true });

  row(
    `kvmstrap deployMany, ${VMS} VMs (concurrency ${CONCURRENCY}), per VM until running`,
    ms(kMedian),
    "-",
    true,
  );
  row(`kvmstrap deployMany, ${VMS} VMs, total wall time`, ms(kWall), "-", true);
  row(`cp + virt-install --import --cloud-init, per VM until running`, ms(vMedian), "-", true);
  row(`cp + virt-install, ${VMS} VMs (concurrency ${CONCURRENCY}), total wall time`, ms(vWall), "-", true);
  row(
    `${VMS} VMs from a 2 GiB base: kvmstrap vs virt-install, total wall time`,
    `${(vWall / kWall).toFixed(1)}x faster (per VM median ${(vMedian / kMedian).toFixed(1)}x)`,
    ">= 10x",
    vWall / kWall >= 10,
  );

  // 2. Deploy time against the base image's size: 1 GiB and 8 GiB bases, runs interleaved.
  const bases = [await makeBase(path.join(benchDir, "base-1g.qcow2"), 1)];
  bases.push(await makeBase(path.join(benchDir, "base-8g.qcow2"), 8));
  const sizeTimes = [[], []];
  const sizeDeps = { libvirt: lv, report, dir: vmDir };
  for (let i = 0; i < SIZE_RUNS; i++) {
    for (const [k, [gib, base]] of [
      [1, bases[0]],
      [8, bases[1]],
    ].entries()) {
      const name = `bench-size-${gib}g`;
      const start = performance.now();
      await deployVm(spec(name, base.file, gib), sizeDeps);
      await untilRunning(name);
      sizeTimes[k].push(performance.now() - start);
      await deleteVm(name, sizeDeps);
    }
  }
  await clearDaemon();
  const [m1, m8] = sizeTimes.map(median);
  row(
    `make the bases (qemu-img create + qemu-io write 0xab): 1 GiB, 8 GiB`,
    `${secs(bases[0].took)}, ${secs(bases[1].took)} (${(bases[1].actualSize / GiB).toFixed(2)} GiB on disk)`,
    "-",
    true,
  );
  row(`kvmstrap deploy from a 1 GiB base until running (${SIZE_RUNS} runs)`, ms(m1), "-", true);
  row(`kvmstrap deploy from an 8 GiB base until running (${SIZE_RUNS} runs)`, ms(m8), "-", true);
  row(
    "deploy time, 8 GiB base / 1 GiB base",
    `${(m8 / m1).toFixed(2)}x`,
    "~1.0x (0.8-1.25)",
    m8 / m1 >= 0.8 && m8 / m1 <= 1.25,
  );

  // 3. Seed build.
  const seed = await benchSeedBuild({ hostname: "bench-vm", user: USER }, 50);
  row("build a cloud-init seed ISO (benchSeedBuild)", ms(seed.medianMs), "<= 10 ms", seed.medianMs <= 10);
} finally {
  await cleanup();
}

const w = Math.max(...rows.map((r) => r.name.length));
console.log(`kvmstrap bench:vm (medians), node ${process.version}, ${new Date().toISOString()}`);
for (const r of rows) {
  const mark = r.ok === null ? "SKIP" : r.ok ? " ok " : "MISS";
  console.log(`[${mark}] ${r.name.padEnd(w)}  ${r.value}${r.target !== "-" ? `  (target ${r.target})` : ""}`);
}
console.log(`total runtime ${secs(performance.now() - t0)}`);
