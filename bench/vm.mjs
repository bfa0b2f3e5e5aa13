// npm run bench:vm: VM deployment, side by side, medians and ratios from one run. Never timed
// assertions in tests. Needs root and the packages of scripts/setup-test-host.sh (virtinst included).
//   1. VMS VMs from the e2e tier's bootable Debian guest image (test/e2e/guest-image.ts, cached under
//      /var/cache/kvmstrap-test/guest) until each is READY: cloud-init's phone_home from inside the
//      guest reached an HTTP server on the host, not merely "qemu started". kvmstrap's deployVm (a
//      qcow2 overlay on the base, its NoCloud seed) against `cp` of the base + a seed ISO made with
//      xorriso + `virt-install --import` per VM (its --cloud-init cdrom is invisible to Debian's
//      cloud kernel), the same user-data and meta-data, direct kernel boot, 512 MiB and 1 vCPU,
//      all VMs of a side at once, on the same test-owned libvirtd (test/e2e/libvirtd.ts) and test
//      network. Guests run under TCG on this 2-core machine, so VMS is small (3: a few minutes per
//      side). Target: kvmstrap >= 10x faster. Also shown: each side's median until qemu started, and
//      the guest's boot alone (qemu started to phone_home), which bounds the ratio any deploy can
//      reach here: under TCG the boot takes minutes and is the same on both sides.
//   2. one kvmstrap deploy from a 1 GiB against an 8 GiB base (both filled with real data), 5 runs
//      each, interleaved, until running (the deploy steps' cost; target: ratio ~1.0x, 0.8x-1.25x)
//   3. benchSeedBuild (render + ISO9660 + atomic write) (target: <= 10 ms median)
//   4. bench/vm-backup.mjs: full vs incremental backup of a 4 GiB disk with 1% changed (target:
//      <= 10%), and a snapshot of a running VM (target: < 1 s)
//   5. bench/vm-metrics.mjs: a kvmstrap metrics scrape against prometheus-libvirt-exporter's with 20
//      running domains on a test libvirtd of its own (target: within 1.0x)
// Everything the bench writes lives in /var/tmp/kvmstrap-bench-* and is removed at the end, also on
// error or Ctrl-C; the test libvirtd's stop() kills every qemu it started.
import { execFile } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { bundleTestModules } from "./lib/test-modules.mjs";

// Every child gets the abort signal, so a Ctrl-C also ends a running cp, qemu-io or virt-install.
const abort = new AbortController();
const execFileP = promisify(execFile);
const run = (file, args, options = {}) => execFileP(file, args, { ...options, signal: abort.signal });
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const dist = (f) => import(pathToFileURL(path.join(root, "dist", f)).href);
const { deleteVm } = await dist("vm/manage.js");
const { deployVm } = await dist("vm/deploy.js");
const { VirshLibvirt } = await dist("vm/virsh-libvirt.js");
const { renderSeed } = await dist("vm/cloud-init.js");
const { benchSeedBuild } = await dist("vm/seed-iso.js");
const { detectHost } = await dist("detect/index.js");
const { RootedHostFs } = await dist("host/fs.js");
const { startPhoneHomeServer } = await dist("vm/phone-home.js");

const GiB = 2 ** 30;
const VMS = Number(process.env.KVMSTRAP_BENCH_VMS ?? 3); // TCG on 2 cores: keep it small
const READY_TIMEOUT_MS = 15 * 60_000;
const SIZE_RUNS = 5;
const NET = {
  name: "kvmstrap-test",
  bridge: "kvmstrap-br0",
  gateway: "192.168.150.1",
  host: "192.168.150.2",
};
/** A well-formed OpenSSH ed25519 public key line (the private key is thrown away). */
function benchKey() {
  const raw = Buffer.from(generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" }).x, "base64url");
  const str = (b) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from("ssh-ed25519")), str(raw)]).toString("base64")} ops@bench`;
}
const USER = { name: "ops", sshKeys: [benchKey()], sudo: true };

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
const loadAtStart = loadavg()[0];

// The test libvirtd is TypeScript outside the build: bundled by esbuild into .cache/ as
// scripts/build-guest-image.mjs does (inside the repository so that its import of execa resolves).
mkdirSync(path.join(root, ".cache"), { recursive: true });
const bundleDir = mkdtempSync(path.join(root, ".cache", "bench-vm-"));
const benchDir = mkdtempSync("/var/tmp/kvmstrap-bench-");
let daemon;
let home;
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  abort.abort();
  await home?.close().catch(() => {});
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
  for (const tool of ["virt-install", "virsh", "qemu-img", "qemu-io", "nsenter", "xorriso"]) {
    await run("sh", ["-c", `command -v ${tool}`]).catch(() => {
      throw new Error(`${tool} is missing: run scripts/setup-test-host.sh (virt-install: Debian virtinst)`);
    });
  }
  const bundled = await bundleTestModules(
    root,
    ["test/e2e/libvirtd.ts", "test/e2e/guest-image.ts"],
    bundleDir,
  );
  const { startTestLibvirtd } = await bundled("libvirtd.mjs");
  const { ensureGuestImage } = await bundled("guest-image.mjs");
  const image = await ensureGuestImage();

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
  // The guests reach the host's phone_home server over a veth into the daemon's network namespace.
  await daemon.withHostLink(NET.bridge, `${NET.host}/24`);
  home = await startPhoneHomeServer(NET.host);
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
  const spec = (name, base, baseGiB, boot) => ({
    name,
    image: base,
    vcpus: 1,
    memoryMiB: boot ? 512 : 256,
    diskGiB: baseGiB + 1,
    user: USER,
    nics: [{ kind: "network", network: NET.name }],
    ...(boot ? { kernel: { path: image.kernel, initrd: image.initrd, cmdline: image.append } } : {}),
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

  // 1. VMS VMs from the bootable guest image, each timed until its phone_home arrives.
  const guestInfo = JSON.parse((await run("qemu-img", ["info", "--output=json", image.qcow2])).stdout);
  const guestGiB = Math.ceil(guestInfo["virtual-size"] / GiB);
  log(
    `guest image ${image.qcow2}: ${(guestInfo["actual-size"] / 2 ** 20).toFixed(0)} MiB on disk, ${guestGiB} GiB virtual`,
  );
  const names = Array.from({ length: VMS }, (_, i) => `bench-vm-${i}`);
  /** Runs fn for every item at once; each returns its timings. */
  const together = (items, fn) => Promise.all(items.map(fn));
  const ready = (instanceId) => home.waitFor(instanceId, READY_TIMEOUT_MS);

  // 1a. kvmstrap: deployVm (overlay, seed, define, start), then the guest's phone_home.
  const deps = { libvirt: lv, report, dir: vmDir, phoneHome: { url: home.url } };
  t = performance.now();
  const kRuns = await together(names, async (name) => {
    const start = performance.now();
    const r = await deployVm(spec(name, image.qcow2, guestGiB, true), deps);
    const started = performance.now() - start;
    const post = await ready(r.instanceId);
    return { started, ready: post.at - (performance.timeOrigin + start), steps: r.steps };
  });
  const kWall = performance.now() - t;
  const kReady = median(kRuns.map((x) => x.ready));
  const kStarted = median(kRuns.map((x) => x.started));
  const stepIds = kRuns[0].steps.map((st) => st.id);
  const perStep = stepIds.map(
    (id) => `${id} ${median(kRuns.map((x) => x.steps.find((st) => st.id === id)?.durationMs ?? 0))} ms`,
  );
  log(
    `kvmstrap: ${VMS} ready in ${secs(kWall)}; per VM median ${secs(kReady)} (qemu started after ${ms(kStarted)})`,
  );
  log(`kvmstrap: median per deploy step: ${perStep.join(", ")}`);
  for (const n of names) await deleteVm(n, deps);
  await clearDaemon();

  // 1b. cp + a seed ISO + virt-install --import, the same seed content, then the guest's phone_home.
  // virt-install runs inside the test libvirtd's namespaces so that its scratch files (the cloud-init
  // ISO, in /var/lib/libvirt/boot when that exists) land in the private daemon's directories.
  const copies = path.join(benchDir, "copies");
  const xdg = path.join(benchDir, "xdg-cache"); // virt-install's log and fallback scratch dir
  await mkdir(copies, { recursive: true });
  await mkdir(xdg, { recursive: true });
  // virt-install makes a storage pool for each directory that holds a disk or its cloud-init ISO,
  // and runs of it in parallel race on that ("pool ... already exists"). As an operator with a pool
  // for their disks would have, the pools exist before the clock starts.
  await mkdir(path.join(daemon.dirs.lib, "boot"), { recursive: true });
  for (const [poolName, dir] of [
    ["bench-copies", copies],
    ["boot", "/var/lib/libvirt/boot"],
    ["bench-guest", path.dirname(image.qcow2)],
  ]) {
    await virsh("pool-define-as", poolName, "dir", "--target", dir);
    await virsh("pool-start", poolName);
  }
  // The same seed content gives the same instance-id on both sides: forget the first side's posts.
  home.posts.clear();
  t = performance.now();
  const vRuns = await together(names, async (name) => {
    const start = performance.now();
    const seed = renderSeed({ hostname: name, user: USER, phoneHomeUrl: home.url });
    const disk = path.join(copies, `${name}.qcow2`);
    await run("cp", ["--reflink=never", image.qcow2, disk]);
    // The NoCloud seed as an operator makes it by hand (xorriso), attached as a read-only virtio
    // disk: virt-install --cloud-init puts its ISO on a SATA cdrom, which Debian's cloud kernel
    // (no ahci) cannot see, so the guest would boot without its user-data and never phone home.
    const iso = path.join(copies, `${name}-seed.iso`);
    const seedDir = path.join(copies, `${name}-seed`);
    await mkdir(seedDir);
    await writeFile(path.join(seedDir, "user-data"), seed.userData);
    await writeFile(path.join(seedDir, "meta-data"), seed.metaData);
    await run("xorriso", ["-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-r", "-o", iso, seedDir]);
    const args = [
      "--connect",
      uri,
      "--name",
      name,
      "--import",
      "--virt-type",
      "qemu",
      "--memory",
      "512",
      "--vcpus",
      "1",
      "--osinfo",
      "linux2022",
      "--boot",
      `kernel=${image.kernel},initrd=${image.initrd},kernel_args="${image.append}"`,
      "--disk",
      `path=${disk},format=qcow2,bus=virtio`,
      "--disk",
      `path=${iso},format=raw,device=disk,bus=virtio,readonly=on`,
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
    const started = performance.now() - start;
    const post = await ready(seed.instanceId);
    return { started, ready: post.at - (performance.timeOrigin + start) };
  });
  const vWall = performance.now() - t;
  const vReady = median(vRuns.map((x) => x.ready));
  const vStarted = median(vRuns.map((x) => x.started));
  log(
    `virt-install: ${VMS} ready in ${secs(vWall)}; per VM median ${secs(vReady)} (qemu started after ${ms(vStarted)})`,
  );
  await clearDaemon();
  await rm(copies, { recursive: true, force: true });

  const ratio = vReady / kReady;
  row(
    `${VMS} VMs at once, per VM until phone_home (median): kvmstrap | cp + virt-install`,
    `${secs(kReady)} | ${secs(vReady)}`,
    "-",
    true,
  );
  row(
    `${VMS} VMs at once, all ready (wall time): kvmstrap | cp + virt-install`,
    `${secs(kWall)} | ${secs(vWall)}`,
    "-",
    true,
  );
  row(
    `per VM until qemu started (median): kvmstrap | cp + virt-install`,
    `${ms(kStarted)} | ${ms(vStarted)}`,
    "-",
    true,
  );
  // What no deploy can beat here: the guests' own boot under TCG. Even a deploy taking no time at
  // all would be only this much faster than cp + virt-install until ready.
  const boot = median(kRuns.map((x) => x.ready - x.started));
  row(
    "guest boot alone, qemu started to phone_home (kvmstrap side, median)",
    `${secs(boot)}; a zero-time deploy would reach ${(vReady / boot).toFixed(2)}x`,
    "-",
    true,
  );
  row(
    `until ready, kvmstrap vs cp + virt-install (per VM median)`,
    `${ratio.toFixed(2)}x faster (wall ${(vWall / kWall).toFixed(2)}x; until started ${(vStarted / kStarted).toFixed(1)}x)`,
    ">= 10x",
    ratio >= 10,
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
      await deployVm(spec(name, base.file, gib, false), sizeDeps);
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

  // 4. Snapshots and backups (bench/vm-backup.mjs), on the same daemon.
  const { benchVmBackup } = await import("./vm-backup.mjs");
  await benchVmBackup({ uri, dir: benchDir, row, log });

  // 5. Metrics (bench/vm-metrics.mjs), on a daemon of its own.
  const { benchVmMetrics } = await import("./vm-metrics.mjs");
  await benchVmMetrics({ row, log });
} finally {
  await cleanup();
}

const w = Math.max(...rows.map((r) => r.name.length));
console.log(`kvmstrap bench:vm (medians), node ${process.version}, ${new Date().toISOString()}`);
for (const r of rows) {
  const mark = r.ok === null ? "SKIP" : r.ok ? " ok " : "MISS";
  console.log(`[${mark}] ${r.name.padEnd(w)}  ${r.value}${r.target !== "-" ? `  (target ${r.target})` : ""}`);
}
// Guests under TCG share the CPUs with everything else: the load says how comparable two runs are.
console.log(
  `total runtime ${secs(performance.now() - t0)}; load average (1 min) ${loadAtStart.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end`,
);
