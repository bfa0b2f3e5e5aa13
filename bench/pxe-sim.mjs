// bench:pxe, the whole chain at scale: NODES simulated nodes (test/pxe/sim, the same simulator as
// the PXE tier's scale test) through the real `kvmstrap serve` in a network namespace: DHCP as a
// PXE ROM, iPXE over TFTP, DHCP as iPXE, scripts, kernel, initrd and root image over HTTP, the
// appliance's events and answer, then a second boot sent to the local disk and the installed
// system's reports. Target: under 60 s on 2 cores (the simulator shares them). Memory per tracked
// node: the server's resident memory after the run less before it, over the nodes.
import { rmSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { treeCpu } from "./pxe-http.mjs";

const NODES = Number(process.env.KVMSTRAP_BENCH_NODES ?? 1000);

/**
 * The lab (test/pxe/sim/lab.ts) bundled into one module this script can import. It lives under
 * node_modules/.cache so its one external import (esbuild, which bundles the simulator) resolves.
 */
async function loadLab(root) {
  const outfile = path.join(root, "node_modules/.cache/kvmstrap-bench-pxe", `lab-${process.pid}.mjs`);
  await build({
    entryPoints: [path.join(root, "test/pxe/sim/lab.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    external: ["esbuild"],
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: "error",
  });
  return import(pathToFileURL(outfile).href);
}

export async function benchSim({ root, log }) {
  if (process.getuid?.() !== 0) throw new Error("the simulated nodes need root (ip netns)");
  const { Lab, SERIAL } = await loadLab(root);
  // KVMSTRAP_BENCH_SERVE_NODE="--cpu-prof --cpu-prof-dir=DIR" profiles the server through the run.
  const nodeArgs = (process.env.KVMSTRAP_BENCH_SERVE_NODE ?? "").split(" ").filter(Boolean);
  const lab = new Lab({ tag: "bench", root, nodeArgs });
  try {
    await lab.start();
    // A few nodes first, so the figures below are of the run and not of the server's warm-up
    // (JIT, fastify's first routes, the DHCP addon).
    const run = (nodes, first) =>
      lab.run(
        {
          mode: "boot",
          nodes,
          first,
          concurrency: 100,
          windowsizes: [1, 4, 8],
          node: {
            tftpPort: 69,
            sha256: lab.sha256,
            serial: SERIAL,
            blksize: 1456,
            kind: "pxe-bios",
            through: "verified",
            timeoutMs: 120_000,
          },
        },
        (line) => log(line),
      );
    const warm = await run(10, 100_000);
    if (warm.failed) throw new Error(`warm-up: ${JSON.stringify(warm.failures[0])}`);
    const before = lab.memory();
    const cpu0 = treeCpu(lab.serve.pid);
    const t = performance.now();
    const report = await run(NODES, 0);
    const wall = (performance.now() - t) / 1000;
    const serverCpu = treeCpu(lab.serve.pid) - cpu0;
    const after = lab.memory();
    const status = lab.status();
    const mine = new Set(report.macs);
    const atVerified = status.nodes.filter((n) => mine.has(n.mac) && n.state === "verified").length;
    const perNode = ((after.rssKiB - before.rssKiB) * 1024) / NODES;
    const statusBytes = Buffer.byteLength(JSON.stringify(status.nodes)) / status.nodes.length;
    const stage = (s) => report.stages[s] ?? { p50Ms: 0, p95Ms: 0 };
    return {
      title: `${NODES} simulated nodes through the whole chain (kvmstrap serve --dhcp full in a netns; 100 in flight)`,
      rows: [
        [
          "wall time, first DISCOVER to last verified",
          `${wall.toFixed(1).padStart(8)} s    < 60 s: ${wall < 60 && report.failed === 0 ? "ok" : "MISSED"}`,
        ],
        ["nodes ok / failed", `${String(report.ok).padStart(8)} / ${report.failed}`],
        ["nodes at 'verified' in serve status", `${String(atVerified).padStart(8)}`],
        ["server CPU for the run", `${serverCpu.toFixed(1).padStart(8)} s`],
        [
          "server RSS before -> after (peak)",
          `${(before.rssKiB / 1024).toFixed(0).padStart(8)} -> ${(after.rssKiB / 1024).toFixed(0)} MiB (${(after.hwmKiB / 1024).toFixed(0)} MiB)`,
        ],
        ["memory per tracked node (RSS delta / nodes)", `${(perNode / 1024).toFixed(1).padStart(8)} KiB`],
        [
          "status JSON per node (timeline of ~30 entries)",
          `${(statusBytes / 1024).toFixed(1).padStart(8)} KiB`,
        ],
      ],
      notes: [
        `per-stage p50/p95 ms: ${Object.keys(report.stages)
          .map((s) => `${s} ${stage(s).p50Ms}/${stage(s).p95Ms}`)
          .join(", ")}`,
        `${report.dhcpRetries} DHCP retransmissions, ${report.tftpResends} TFTP client resends, ${(report.bytes / 2 ** 20).toFixed(0)} MiB moved`,
        ...report.failures.slice(0, 5).map((f) => `failure: ${f.mac} at ${f.stage}: ${f.error}`),
      ],
    };
  } finally {
    await lab.stop();
    rmSync(path.join(root, "node_modules/.cache/kvmstrap-bench-pxe", `lab-${process.pid}.mjs`), {
      force: true,
    });
  }
}
