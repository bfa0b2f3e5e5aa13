// npm run bench:cluster: live migration, side by side in one run. Never timed assertions in tests.
// Needs root and the packages of scripts/setup-test-host.sh. Run it under the machine-wide lock.
//   Two libvirtd hosts in namespaces over TLS with kvmstrap's PKI (test/cluster/hosts.ts), the
//   counting TCG guest of the cluster tier (test/cluster/counter-guest.ts, a 4 MiB raw disk) moved
//   with its disk copied (--copy-storage-all over TLS), RUNS times by each side, interleaved and
//   alternating direction (A->B, B->A) so both sides move the same guest on the same hosts:
//   - kvmstrap: the built `kvmstrap vm migrate NAME --to HOST --copy-storage` (node start, the
//     target's report read, its libvirtd asked over TLS, the checks, then the migration);
//   - virsh: `virsh migrate --live --p2p --tls --persistent --undefinesource --copy-storage-all
//     --migrate-disks sda` by hand.
//   Wall time of each command (median), the downtime libvirt reports for the completed job on the
//   target (median), and kvmstrap's overhead over virsh (target: at most 10% of the wall time).
//   Two cases, one after the other (one guest at a time: a TCG guest keeps a core busy): the
//   cluster tier's guest as it is (4 MiB disk, under a second a migration: kvmstrap's fixed cost,
//   node's start and the target's facts over TLS, is its largest share there) and the same guest on
//   a larger disk (BIG_DISK_MIB, default 1024: a migration of about 5 s here; 0 skips it), where the copy dominates as it does for
//   a real VM's disk.
//   Then HA failover (bench/ha-failover.mjs, HA_RUNS times, default 3; 0 skips it): two hosts with
//   corosync and pacemaker configured by kvmstrap's plan, the HA guest on A, A killed: the time to
//   the guest running on B (median), with the fencing time shown separately.
// Everything lives in the cluster's temporary directory and is removed at the end, also on error.
import { execFile } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { failoverFigures } from "./ha-failover.mjs";
import { bundleTestModules } from "./lib/test-modules.mjs";

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const RUNS = Number(process.env.RUNS ?? 5);
const VM = `kvmcl-bench-${process.pid}`;
const BIG_DISK_MIB = Number(process.env.BIG_DISK_MIB ?? 1024);
const HA_RUNS = Number(process.env.HA_RUNS ?? 3);
const BRIDGE = "kvguest0";
const env = { ...process.env, LC_ALL: "C" };

mkdirSync(path.join(root, ".cache"), { recursive: true });
const bundleDir = mkdtempSync(path.join(root, ".cache", "bench-cluster-"));
const bundled = await bundleTestModules(
  root,
  ["test/cluster/hosts.ts", "test/cluster/counter-guest.ts"],
  bundleDir,
);
// A private copy of the built CLI: a rebuild of the shared tree while the bench runs cannot change
// what it measures halfway.
cpSync(path.join(root, "dist"), path.join(bundleDir, "app/dist"), { recursive: true });
cpSync(path.join(root, "bin"), path.join(bundleDir, "app/bin"), { recursive: true });
const BIN = path.join(bundleDir, "app/bin/kvmstrap.js");
const { startCluster } = await bundled("hosts.mjs");
const { counterDisk, counterDomain } = await bundled("counter-guest.mjs");

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const virsh = (uri, ...args) => run("virsh", ["-c", uri, ...args], { env });
const downtimeOn = async (host, vm) => {
  const { stdout } = await virsh(host.localUri, "domjobinfo", "--completed", vm);
  return Number(/Total downtime:\s+([0-9]+)/.exec(stdout)?.[1] ?? Number.NaN);
};

const cluster = await startCluster();
const stop = async () => {
  await cluster.stop().catch(() => {});
  rmSync(bundleDir, { recursive: true, force: true });
};
process.once("SIGINT", () => stop().then(() => process.exit(130)));
try {
  const reports = {};
  for (const h of [cluster.a, cluster.b]) {
    await mkdir(path.join(h.daemon.dirs.lib, "images"), { recursive: true });
    await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
    await virsh(h.localUri, "pool-create-as", "images", "dir", "--target", "/var/lib/libvirt/images");
    await h.daemon.nsExec("ip", ["link", "add", BRIDGE, "type", "bridge"]);
    await h.daemon.nsExec("ip", ["link", "set", BRIDGE, "up"]);
    const det = await run(
      "nsenter",
      ["-t", String(h.daemon.pid), "-n", "-m", "-u", "node", BIN, "detect", "--json"],
      {
        maxBuffer: 64 * 2 ** 20,
      },
    ).catch((e) => e);
    reports[h.name] = path.join(cluster.dir, `${h.name}-report.json`);
    await writeFile(reports[h.name], det.stdout);
  }
  // Warm both daemons' capability caches, as a production host's are.
  for (const h of [cluster.a, cluster.b]) await virsh(h.tlsUri, "domcapabilities", "--virttype", "qemu");

  const sides = {
    kvmstrap: (vm, from, to) =>
      run(
        "node",
        [
          BIN,
          "vm",
          "migrate",
          vm,
          "--to",
          to.address,
          "--to-connect",
          to.tlsUri,
          "--connect",
          from.localUri,
          "--target-report",
          reports[to.name],
          "--copy-storage",
        ],
        { env },
      ),
    virsh: (vm, from, to) =>
      virsh(
        from.localUri,
        "migrate",
        "--live",
        "--p2p",
        "--tls",
        "--persistent",
        "--undefinesource",
        "--copy-storage-all",
        "--migrate-disks",
        "sda",
        vm,
        to.tlsUri,
      ),
  };

  /** Defines and starts the counting guest on A with a disk of diskMiB, migrates it RUNS times by each side, removes it. */
  const runCase = async (vm, diskMiB) => {
    const disk = counterDisk();
    const big = Buffer.alloc(diskMiB * 2 ** 20);
    if (diskMiB * 2 ** 20 > disk.length) randomFillSync(big, disk.length);
    disk.copy(big, 0);
    await writeFile(path.join(cluster.a.daemon.dirs.lib, `images/${vm}.raw`), diskMiB ? big : disk);
    const xml = path.join(cluster.dir, `${vm}.xml`);
    await writeFile(xml, counterDomain(vm, BRIDGE));
    await virsh(cluster.a.localUri, "define", xml);
    await virsh(cluster.a.localUri, "start", vm);
    const results = { kvmstrap: { wall: [], down: [] }, virsh: { wall: [], down: [] } };
    let here = cluster.a;
    const other = () => (here === cluster.a ? cluster.b : cluster.a);
    // One uncounted migration first: a freshly written disk and the daemons' first migration to
    // each other are slower, and would land on whichever side goes first.
    const warm = other();
    await sides.virsh(vm, here, warm);
    here = warm;
    for (let i = 0; i < RUNS; i++) {
      const order = i % 2 ? ["virsh", "kvmstrap"] : ["kvmstrap", "virsh"];
      for (const side of order) {
        const to = other();
        const t0 = performance.now();
        await sides[side](vm, here, to);
        const wall = performance.now() - t0;
        results[side].wall.push(wall);
        results[side].down.push(await downtimeOn(to, vm));
        process.stderr.write(
          `${side} ${here.name} -> ${to.name}: ${wall.toFixed(0)} ms, downtime ${results[side].down.at(-1)} ms\n`,
        );
        here = to;
      }
    }
    await virsh(here.localUri, "destroy", vm);
    await virsh(here.localUri, "undefine", vm);
    return results;
  };

  const cases = [[`the cluster tier's guest (4 MiB disk)`, await runCase(VM, 0)]];
  if (BIG_DISK_MIB > 0)
    cases.push([`the same guest on a ${BIG_DISK_MIB} MiB disk`, await runCase(`${VM}-big`, BIG_DISK_MIB)]);
  console.log(
    `\nbench:cluster (${RUNS} migrations each, interleaved, --copy-storage-all over TLS, TCG guest with 32 MiB of RAM, load ${loadavg()[0].toFixed(2)})`,
  );
  for (const [label, results] of cases) {
    const k = median(results.kvmstrap.wall);
    const v = median(results.virsh.wall);
    const overhead = (100 * (k - v)) / v;
    console.log(`\n${label}\nside        wall median   downtime median`);
    for (const side of ["kvmstrap", "virsh"]) {
      const r = results[side];
      console.log(
        `${side.padEnd(10)}  ${median(r.wall).toFixed(0).padStart(8)} ms   ${String(median(r.down)).padStart(8)} ms`,
      );
    }
    console.log(
      `kvmstrap overhead: ${(k - v).toFixed(0)} ms, ${overhead.toFixed(1)}% of virsh's wall time (target: at most 10%) ${overhead <= 10 ? "OK" : "OVER"}`,
    );
    // Each round runs the two back to back: their differences cancel the other load of a shared
    // machine, which moves both medians by more than the overhead itself.
    const paired = median(results.kvmstrap.wall.map((w, i) => w - results.virsh.wall[i]));
    console.log(
      `paired: median of kvmstrap - virsh in the same round ${paired.toFixed(0)} ms, ${((100 * paired) / v).toFixed(1)}% of virsh's median`,
    );
  }
} finally {
  await stop();
}

// After the migration rig is gone: the HA rig starts its own hosts.
if (HA_RUNS > 0) {
  const r = await failoverFigures(HA_RUNS, (line) => process.stderr.write(`ha ${line}\n`));
  console.log(
    `\nHA failover (median of ${HA_RUNS}, load ${loadavg()[0].toFixed(2)}): host killed -> VM running on the other host ` +
      `${r.medianFailoverMs} ms, of which fencing ${r.medianFencingMs} ms (crm_mon reports the VM started at ${r.medianCrmMonMs} ms)`,
  );
}
