// bench:vm, metrics: one scrape of `kvmstrap metrics` (the built CLI, one `virsh domstats` pass;
// as it runs by default, and with --vcpu-stats) against one of prometheus-libvirt-exporter (Debian's package, libvirt's API from Go), side by side
// on the same test-owned libvirtd with DOMAINS running domains (test/e2e/idle-domains.ts: no OS, an
// idle boot sector, 32 MiB, one disk and one NIC each, TCG), measured once every domain has read
// its boot sector (as a scrape in production meets domains that run, not 20 SeaBIOS boots under
// way, which make every qemu monitor slow and the figures noise). Scrapes alternate between the two, one
// at a time, each timed from the request to the last byte of the body; medians and their ratio
// (target: kvmstrap, as it runs by default, within 1.0x of the exporter's time). Run alone: `node bench/vm-metrics.mjs`
// (root, after npm run build); bench/vm.mjs runs it as its last part.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { execa } from "execa";
import { bundleTestModules } from "./lib/test-modules.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..");
const DOMAINS = Number(process.env.KVMSTRAP_BENCH_METRICS_DOMAINS ?? 20);
const WARMUP = 3;
const RUNS = Number(process.env.KVMSTRAP_BENCH_METRICS_RUNS ?? 30);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function timedScrape(url) {
  const t = performance.now();
  const res = await fetch(url);
  const text = await res.text();
  const ms = performance.now() - t;
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return { ms, text };
}

/** Adds its rows through row(name, value, target, ok); log(line) for progress. */
export async function benchVmMetrics({ row, log }) {
  mkdirSync(path.join(root, ".cache"), { recursive: true });
  const bundleDir = mkdtempSync(path.join(root, ".cache", "bench-vm-metrics-"));
  const work = await mkdtemp(path.join("/var/tmp", `kvmstrap-bench-metrics-${process.pid}-`));
  let daemon;
  const ours = [];
  let theirs;
  try {
    const bundled = await bundleTestModules(
      root,
      ["test/e2e/libvirtd.ts", "test/e2e/idle-domains.ts"],
      bundleDir,
    );
    const { startTestLibvirtd } = await bundled("libvirtd.mjs");
    const { defineIdleDomain, startIdleNetwork, startLibvirtExporter, waitIdle } =
      await bundled("idle-domains.mjs");

    daemon = await startTestLibvirtd();
    await startIdleNetwork(daemon.uri, work);
    const t0 = performance.now();
    const names = Array.from({ length: DOMAINS }, (_, i) => `bench-m-${i}`);
    for (const name of names) await defineIdleDomain(daemon.uri, work, { name });
    await waitIdle(daemon.uri, names, 120_000);
    log(`${DOMAINS} idle domains running and booted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    theirs = await startLibvirtExporter(daemon.uri);
    const startOurs = async (extra) => {
      const child = execa(
        process.execPath,
        [
          path.join(root, "bin/kvmstrap.js"),
          "metrics",
          "--connect",
          daemon.uri,
          "--listen",
          "127.0.0.1:0",
          ...extra,
        ],
        { reject: false, env: { LC_ALL: "C" } },
      );
      ours.push(child);
      return new Promise((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (b) => {
          out += b.toString();
          const m = /listening on (\S+)/.exec(out);
          if (m) resolve(m[1]);
        });
        child.then((r) => reject(new Error(`kvmstrap metrics exited ${r.exitCode}: ${r.stderr}`)));
      });
    };

    const sides = [
      { name: "kvmstrap metrics", url: await startOurs([]), times: [], collect: [] },
      { name: "prometheus-libvirt-exporter", url: theirs.url, times: [], collect: [] },
      {
        name: "kvmstrap metrics --vcpu-stats",
        url: await startOurs(["--vcpu-stats"]),
        times: [],
        collect: [],
      },
    ];
    for (let i = 0; i < WARMUP + RUNS; i++) {
      // Alternate the order, so none always follows another's load.
      for (const side of i % 2 ? [...sides].reverse() : sides) {
        const { ms, text } = await timedScrape(side.url);
        if (i < WARMUP) continue;
        side.times.push(ms);
        const c = /^kvmstrap_scrape_collect_seconds (\S+)$/m.exec(text);
        if (c) side.collect.push(Number(c[1]) * 1000);
        if (i === WARMUP) {
          const series = text.split("\n").filter((l) => l && !l.startsWith("#")).length;
          const running = new Set(
            [
              ...text.matchAll(
                /^(?:kvmstrap_domain_cpu_seconds_total|libvirt_domain_info_cpu_time_seconds_total)\{[^}]*domain="([^"]+)"/gm,
              ),
            ].map((m) => m[1]),
          ).size;
          log(`${side.name}: ${series} series, ${running} domains, ${text.length} bytes`);
          if (running !== DOMAINS) throw new Error(`${side.name} shows ${running} domains, not ${DOMAINS}`);
        }
      }
    }
    const [k, e, kv] = sides.map((s) => median(s.times));
    row(
      `metrics scrape, ${DOMAINS} running domains (median of ${RUNS}): kvmstrap | prometheus-libvirt-exporter`,
      `${k.toFixed(1)} ms | ${e.toFixed(1)} ms`,
      "-",
      true,
    );
    row(
      "  of which kvmstrap's collection (virsh domstats + host figures, median)",
      `${median(sides[0].collect).toFixed(1)} ms`,
      "-",
      true,
    );
    row(
      `metrics scrape, kvmstrap / prometheus-libvirt-exporter`,
      `${(k / e).toFixed(2)}x`,
      "<= 1.0x",
      k / e <= 1.0,
    );
    row(
      `metrics scrape with --vcpu-stats (per-vCPU figures): kvmstrap | ratio to the exporter`,
      `${kv.toFixed(1)} ms | ${(kv / e).toFixed(2)}x`,
      "-",
      true,
    );
  } finally {
    for (const child of ours) {
      if (child.exitCode !== null) continue;
      child.kill("SIGTERM");
      await child;
    }
    await theirs?.stop().catch(() => {});
    await daemon?.stop().catch((err) => log(`stopping the test libvirtd: ${err.message}`));
    await rm(work, { recursive: true, force: true });
    rmSync(bundleDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  if (process.getuid?.() !== 0)
    throw new Error("bench:vm metrics needs root (a private libvirtd in namespaces)");
  const rows = [];
  await benchVmMetrics({
    row: (name, value, target, ok) => rows.push({ name, value, target, ok }),
    log: (m) => console.error(`[bench:vm metrics] ${m}`),
  });
  console.log(`kvmstrap bench:vm metrics (medians), node ${process.version}, ${new Date().toISOString()}`);
  for (const r of rows) {
    const mark = r.ok ? " ok " : "MISS";
    console.log(`[${mark}] ${r.name}  ${r.value}${r.target !== "-" ? `  (target ${r.target})` : ""}`);
  }
}
