// Snapshots and backups, side by side in one run (part of npm run bench:vm; alone: node bench/vm-backup.mjs
// after npm run build, as root). Medians, never timed assertions in tests.
//   1. `kvmstrap vm snapshot create` (createSnapshot) of a running VM, then delete (libvirt's
//      blockcommit back into the base) before the next: SNAPS runs. Target: create < 1 s.
//   2. `kvmstrap vm backup` (backupVm, the path the CLI runs) of a running VM's 4 GiB qcow2 disk,
//      filled with data first: a full backup (new chain) and then an incremental one after 1% of the
//      disk (41 MiB in 1 MiB writes spread over it) was rewritten through the running qemu (HMP
//      qemu-io on the guest's disk device, so the checkpoint's dirty bitmap counts the writes).
//      RUNS pairs. Target: incremental <= 10% of the full's time (end to end, checksums included);
//      the backup job alone (backup-begin until libvirt reports it completed) is shown too.
// The VMs boot nothing (SeaBIOS finds no boot sector and waits), which is all a disk-level bench needs.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { bundleTestModules } from "./lib/test-modules.mjs";

const execFileP = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const dist = (f) => import(pathToFileURL(path.join(root, "dist", f)).href);

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const RUNS = Number(process.env.KVMSTRAP_BENCH_BACKUP_RUNS ?? 3);
const SNAPS = Number(process.env.KVMSTRAP_BENCH_SNAPSHOTS ?? 5);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const secs = (x) => `${(x / 1000).toFixed(2)} s`;

function domainXml(name, disk) {
  return `<domain type='qemu'>
  <name>${name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='${disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
  </devices>
</domain>
`;
}

/** Runs the section on a running test libvirtd; rows go to `row(name, value, target, ok)`. */
export async function benchVmBackup({ uri, dir, row, log }) {
  const run = (file, args) =>
    execFileP(file, args, { env: { ...process.env, LC_ALL: "C" }, maxBuffer: 1 << 24 });
  const { VirshLibvirt } = await dist("vm/virsh-libvirt.js");
  const { backupVm } = await dist("vm/backup.js");
  const { createSnapshot, deleteSnapshot } = await dist("vm/snapshot.js");
  const lv = new VirshLibvirt(uri);
  const virsh = (...args) => run("virsh", ["-c", uri, ...args]);

  let t = performance.now();

  // 1. Snapshot of a running VM.
  const sdisk = path.join(dir, "snap-bench.qcow2");
  await run("qemu-img", ["create", "-q", "-f", "qcow2", sdisk, "4G"]);
  const svm = "kvst-bench-snap";
  await lv.defineDomain(domainXml(svm, sdisk));
  await lv.start(svm);
  const creates = [];
  const deletes = [];
  for (let i = 0; i < SNAPS; i++) {
    const r = await createSnapshot(svm, `s${i}`, { libvirt: lv });
    creates.push(r.durationMs);
    t = performance.now();
    await deleteSnapshot(svm, `s${i}`, { libvirt: lv });
    deletes.push(performance.now() - t);
  }
  row(
    `vm snapshot create of a running VM (${SNAPS} runs, no guest agent)`,
    secs(median(creates)),
    "< 1 s",
    median(creates) < 1000,
  );
  row("vm snapshot delete (blockcommit of its overlay back)", secs(median(deletes)), "-", true);
  await lv.destroy(svm);
  await lv.undefineDomain(svm);

  // 2. Full vs incremental backup of a 4 GiB disk.
  const disk = path.join(dir, "backup-bench.qcow2");
  t = performance.now();
  await run("qemu-img", ["create", "-q", "-f", "qcow2", disk, "4G"]);
  // qemu-io writes at most 2 GiB a command.
  const fill = [0, 1, 2, 3].flatMap((g) => ["-c", `write -P 0xab ${g}G 1G`]);
  await run("qemu-io", ["-f", "qcow2", ...fill, disk]);
  log(`4 GiB disk filled in ${secs(performance.now() - t)}`);
  const vm = "kvst-bench-backup";
  await lv.defineDomain(domainXml(vm, disk));
  await lv.start(vm);
  // The guest's own disk device (the virtio-blk behind libvirt's virtio-disk0): writes through it are
  // the guest's writes, and the checkpoint's dirty bitmap counts them.
  const device = "/machine/peripheral/virtio-disk0/virtio-backend";
  const fulls = [];
  const incs = [];
  const fullJobs = [];
  const incJobs = [];
  let incBytes = 0;
  let fullBytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const to = path.join(dir, `backups-${i}`);
    t = performance.now();
    const full = await backupVm(vm, to, { libvirt: lv });
    fulls.push(performance.now() - t);
    fullJobs.push(full.entry.durationMs);
    fullBytes = full.entry.files.reduce((n, f) => n + f.size, 0);
    // 1% of the disk: 41 writes of 1 MiB, spread evenly, a new pattern each run.
    const step = Math.floor((4 * GiB) / 41 / MiB) * MiB;
    for (let k = 0; k < 41; k++) {
      const cmd = `qemu-io -d ${device} "write -P 0x${(0x10 + i).toString(16)} ${k * step} 1M"`;
      const r = await virsh("qemu-monitor-command", vm, "--hmp", cmd);
      if (r.stdout.trim()) throw new Error(`qemu-io in ${vm}: ${r.stdout.trim()}`);
    }
    t = performance.now();
    const inc = await backupVm(vm, to, { libvirt: lv }, { incremental: true });
    incs.push(performance.now() - t);
    incJobs.push(inc.entry.durationMs);
    incBytes = inc.entry.files.reduce((n, f) => n + f.size, 0);
    log(
      `run ${i + 1}/${RUNS}: full ${secs(fulls.at(-1))} (job ${secs(fullJobs.at(-1))}), incremental ${secs(incs.at(-1))} (job ${secs(incJobs.at(-1))})`,
    );
    rmSync(to, { recursive: true, force: true });
  }
  const [mf, mi] = [median(fulls), median(incs)];
  row(
    `vm backup, full, of a running VM's 4 GiB disk (${RUNS} runs; ${(fullBytes / GiB).toFixed(2)} GiB written)`,
    `${secs(mf)} (job ${secs(median(fullJobs))})`,
    "-",
    true,
  );
  row(
    `vm backup --incremental after 1% changed (${(incBytes / MiB).toFixed(1)} MiB written)`,
    `${secs(mi)} (job ${secs(median(incJobs))})`,
    "-",
    true,
  );
  row("incremental / full backup time", `${((mi / mf) * 100).toFixed(1)}%`, "<= 10%", mi / mf <= 0.1);
  await lv.destroy(vm);
  for (const cp of (await lv.checkpointNames(vm)).reverse())
    await lv.checkpointDelete(vm, cp, { metadataOnly: true });
  await lv.undefineDomain(vm);
  rmSync(disk, { force: true });
}

// Alone: its own test libvirtd (bundled from test/e2e/libvirtd.ts as bench/vm.mjs does).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  mkdirSync(path.join(root, ".cache"), { recursive: true });
  const bundleDir = mkdtempSync(path.join(root, ".cache", "bench-backup-"));
  const dir = mkdtempSync("/var/tmp/kvmstrap-bench-backup-");
  const rows = [];
  const log = (m) => console.error(`[bench:vm-backup] ${m}`);
  let daemon;
  try {
    if (process.getuid?.() !== 0) throw new Error("needs root (a private libvirtd in namespaces)");
    const bundled = await bundleTestModules(root, ["test/e2e/libvirtd.ts"], bundleDir);
    const { startTestLibvirtd } = await bundled("libvirtd.mjs");
    daemon = await startTestLibvirtd();
    await benchVmBackup({
      uri: daemon.uri,
      dir,
      row: (name, value, target, ok) => rows.push({ name, value, target, ok }),
      log,
    });
  } finally {
    await daemon?.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    rmSync(bundleDir, { recursive: true, force: true });
  }
  const w = Math.max(...rows.map((r) => r.name.length));
  console.log(
    `kvmstrap bench:vm snapshots and backups (medians), node ${process.version}, ${new Date().toISOString()}`,
  );
  for (const r of rows)
    console.log(
      `[${r.ok ? " ok " : "MISS"}] ${r.name.padEnd(w)}  ${r.value}${r.target !== "-" ? `  (target ${r.target})` : ""}`,
    );
}
