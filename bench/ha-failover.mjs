// HA failover time for `npm run bench:cluster` (bench/cluster.mjs can call failoverFigures(); run alone:
// `npm run build && flock /tmp/kvmstrap-heavy.lock node bench/ha-failover.mjs`). Never timed assertions
// in tests. Needs root and the packages of scripts/setup-test-host.sh (corosync, pacemaker).
//   The cluster tier's HA rig (test/cluster/ha-rig.ts): two test hosts in namespaces running libvirtd,
//   corosync and pacemaker configured from kvmstrap's planHa (corosync.conf, the CIB), each member
//   fenced by the test agent whose power controller kills the host's whole namespace; the counting TCG
//   guest started by pacemaker on A. Then A's namespace is killed, RUNS times (a fresh rig each time):
//   - fencing: from the kill to the power controller having A off (B's pacemaker noticed the loss,
//     corosync's token timed out, and B's fencer ran the agent);
//   - failover: from the kill to the VM's qemu process started on B (and, separately, to crm_mon on
//     B reporting it started).
//   Medians, with each run's figures.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { bundleTestModules } from "./lib/test-modules.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** RUNS failovers on fresh rigs; returns the medians (ms) and each run's figures. */
export async function failoverFigures(runs = 3, log = console.log) {
  mkdirSync(path.join(root, ".cache"), { recursive: true });
  const dir = mkdtempSync(path.join(root, ".cache", "bench-ha-"));
  try {
    const bundled = await bundleTestModules(root, ["test/cluster/ha-rig.ts"], dir);
    const { startHaRig, formAndStart, killAAndRecover } = await bundled("ha-rig.mjs");
    const agent = path.join(root, "test/cluster/fence_kvmstrap_test");
    const each = [];
    for (let i = 0; i < runs; i++) {
      const rig = await startHaRig(agent);
      try {
        const { formedMs } = await formAndStart(rig);
        const f = await killAAndRecover(rig);
        const r = {
          formedMs,
          fencingMs: f.fencedAt - f.killedAt,
          failoverMs: Math.round(f.startedAt - f.killedAt),
          crmMonMs: f.recoveredAt - f.killedAt,
        };
        each.push(r);
        log(`run ${i + 1}: ${JSON.stringify(r)}`);
      } finally {
        await rig.stop();
      }
    }
    const m = (k) => median(each.map((r) => r[k]));
    return {
      runs: each,
      medianFencingMs: m("fencingMs"),
      medianFailoverMs: m("failoverMs"),
      medianCrmMonMs: m("crmMonMs"),
      medianFormedMs: m("formedMs"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = Number(process.env.RUNS ?? 3);
  const load = loadavg()[0].toFixed(1);
  const r = await failoverFigures(runs);
  console.log(
    `HA failover (median of ${runs}, load ${load}): host killed -> VM running on the other host ${r.medianFailoverMs} ms ` +
      `(crm_mon reports it ${r.medianCrmMonMs} ms); fencing ${r.medianFencingMs} ms of it; cluster formed in ${r.medianFormedMs} ms`,
  );
  process.exit(0);
}
