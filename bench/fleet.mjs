// npm run bench:fleet: the fleet store's event ingest with 1,000 simulated nodes, on embedded PGlite
// and on a PostgreSQL 15 of its own (the fleet tier's test-owned instance: initdb in a temp dir, a
// unix socket, default durability: fsync and synchronous_commit on), side by side, medians of RUNS
// runs, interleaved. Never timed assertions in tests.
//   1. event ingest: 1,000 nodes at once, each posting EVENTS events one after another and waiting
//      for each acknowledgement (as the HTTP intake answers once its event is committed); the events
//      name their node by MAC and move it along the boot chain (timelines, current state).
//      Targets: >= 1,000 events/s on PGlite, >= 2,000 events/s on PostgreSQL (2 cores).
//   2. identity resolution of the same 1,000 nodes (boot: MAC, UUID, serial), one after another.
// Then every other bench/fleet-*.mjs (the rollout decision, ...) runs as its own process; the lines
// it prints on stdout that are JSON objects {name, value, target, ok} are rows of the same table,
// other lines are passed through. KVMSTRAP_BENCH_RUNS (default 5), KVMSTRAP_BENCH_FLEET_NODES
// (default 1000), KVMSTRAP_BENCH_FLEET_EVENTS (events per node per run, default 10).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const RUNS = Number(process.env.KVMSTRAP_BENCH_RUNS ?? 5);
const NODES = Number(process.env.KVMSTRAP_BENCH_FLEET_NODES ?? 1000);
const EVENTS = Number(process.env.KVMSTRAP_BENCH_FLEET_EVENTS ?? 10);
const STATES = [
  "offered",
  "tftp",
  "ipxe",
  "script",
  "kernel",
  "initrd",
  "rootfs",
  "appliance-up",
  "answer-fetched",
  "installing",
];
const log = (m) => console.error(`[bench:fleet] ${m}`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const rows = [];
const row = (name, value, target, ok) => rows.push({ name, value, target, ok });

const { openPglite, openPostgres } = await import(
  pathToFileURL(path.join(root, "dist/fleet/store/index.js")).href
);

/** The fleet tier's PostgreSQL harness (TypeScript), bundled where its imports resolve. */
async function loadPostgresHarness() {
  const dir = path.join(root, "node_modules/.cache/kvmstrap-bench-fleet");
  mkdirSync(dir, { recursive: true });
  const outfile = path.join(dir, `postgres-server-${process.pid}.mjs`);
  await build({
    entryPoints: [path.join(root, "test/fleet/store/postgres-server.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    logLevel: "error",
  });
  try {
    return await import(pathToFileURL(outfile).href);
  } finally {
    rmSync(outfile, { force: true });
  }
}

const mac = (i) =>
  `02:fe:00:${((i >> 16) & 255).toString(16).padStart(2, "0")}:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
const uuid = (i) => `6f1c2d3e-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;

/** Resolves NODES new machines one after another; returns resolutions per second. */
async function resolveAll(store) {
  const t = performance.now();
  for (let i = 0; i < NODES; i++)
    await store.resolveNode({ uuid: uuid(i), serial: `BENCH-${i}`, macs: [mac(i)] }, { rack: `r${i % 4}` });
  return NODES / ((performance.now() - t) / 1000);
}

/** One run: NODES callers, EVENTS each, one in flight per node. Returns events/s and batches. */
async function ingest(store, run) {
  const before = store.ingestStats;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: NODES }, async (_, i) => {
      for (let k = 0; k < EVENTS; k++)
        await store.append({
          type: "node-state",
          mac: mac(i),
          source: `r${i % 4}`,
          state: STATES[k % STATES.length],
          body: { run, k, detail: "bench: a boot-chain step with a line of detail like the server's" },
        });
    }),
  );
  const seconds = (performance.now() - t) / 1000;
  const after = store.ingestStats;
  return {
    rate: (NODES * EVENTS) / seconds,
    batch: (after.events - before.events) / (after.batches - before.batches),
  };
}

/** Runs bench/fleet-*.mjs, each in its own process; collects its JSON rows. */
async function others() {
  const files = readdirSync(here)
    .filter((f) => /^fleet-.+\.mjs$/.test(f))
    .sort();
  for (const f of files) {
    log(`running bench/${f}`);
    const child = spawn(process.execPath, [path.join(here, f)], {
      stdio: ["ignore", "pipe", "inherit"],
      cwd: root,
    });
    for await (const line of createInterface({ input: child.stdout })) {
      let r;
      try {
        r = JSON.parse(line);
      } catch {
        console.log(line);
        continue;
      }
      if (r && typeof r === "object" && "name" in r && "value" in r)
        row(r.name, String(r.value), r.target ?? "", r.ok);
      else console.log(line);
    }
    const code = await new Promise((resolve) => child.on("close", (c) => resolve(c)));
    if (code !== 0) row(`bench/${f}`, `exited ${code}`, "exit 0", false);
  }
}

const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-bench-fleet-${process.pid}-`));
let server;
const stores = {};
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const s of Object.values(stores)) await s.close().catch(() => {});
  await server?.stop().catch((e) => log(`stopping the bench PostgreSQL: ${e.message}`));
  rmSync(dir, { recursive: true, force: true });
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

const loadAtStart = loadavg()[0];
try {
  let t = performance.now();
  stores.pglite = await openPglite(path.join(dir, "pglite"));
  const pgliteOpen = (performance.now() - t) / 1000;
  const { TestPostgres, postgresMissing } = await loadPostgresHarness();
  const missing = postgresMissing();
  if (missing) log(`PostgreSQL rows skipped: ${missing}`);
  else {
    t = performance.now();
    server = await TestPostgres.start("bench");
    stores.postgres = await openPostgres(server.url());
    log(`PostgreSQL 15 up in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
  const drivers = Object.keys(stores);
  const resolved = {};
  for (const d of drivers) {
    resolved[d] = await resolveAll(stores[d]);
    log(`${d}: ${NODES} nodes resolved, ${resolved[d].toFixed(0)}/s`);
  }
  const results = Object.fromEntries(drivers.map((d) => [d, []]));
  await ingest(stores.pglite, -1); // warm-up (JIT, the first batches' plans), not counted
  if (stores.postgres) await ingest(stores.postgres, -1);
  for (let run = 0; run < RUNS; run++)
    for (const d of drivers) {
      const r = await ingest(stores[d], run);
      results[d].push(r);
      log(
        `${d} run ${run + 1}/${RUNS}: ${r.rate.toFixed(0)} events/s, ${r.batch.toFixed(0)} events per commit`,
      );
    }
  const target = { pglite: 1000, postgres: 2000 };
  for (const d of drivers) {
    const rate = median(results[d].map((r) => r.rate));
    const batch = median(results[d].map((r) => r.batch));
    row(
      `event ingest, ${NODES} nodes, ${d}`,
      `${rate.toFixed(0)} events/s (median of ${RUNS}, ${batch.toFixed(0)} events per commit)`,
      `>= ${target[d]} events/s`,
      rate >= target[d],
    );
  }
  for (const d of drivers)
    row(
      `identity resolution, ${NODES} new nodes, ${d}`,
      `${resolved[d].toFixed(0)} nodes/s (one after another)`,
      "",
      undefined,
    );
  row("PGlite first open (initdb + migrations)", `${pgliteOpen.toFixed(1)} s`, "", undefined);
} finally {
  await cleanup();
}
await others();

const load = `${loadAtStart.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`;
console.log(
  `fleet store on ${process.arch}, ${NODES} simulated nodes x ${EVENTS} events per run (load average ${load})`,
);
const width = Math.max(...rows.map((r) => r.name.length));
for (const r of rows) {
  const verdict = r.ok === undefined ? "" : r.ok ? "  ok" : "  MISSED";
  console.log(`  ${r.name.padEnd(width)}  ${r.value}${r.target ? `  (target ${r.target})` : ""}${verdict}`);
}
process.exitCode = rows.some((r) => r.ok === false) ? 1 : 0;
