// The simulator as a process, started inside the clients' network namespace
// (`ip netns exec NS node sim.mjs CONFIG.json`): sockets belong to the namespace of the process
// that opens them. "boot" runs N nodes through the chain and prints one JSON report on stdout
// (progress on stderr); "blast" sends a file of datagrams (fuzz) and prints how many went out.
import { readFileSync } from "node:fs";
import { type BlastConfig, blast } from "./blast.js";
import { DhcpPort, type Identity } from "./dhcp.js";
import { bootNode, type NodeConfig, type NodeResult, STAGES, type Stage } from "./node.js";

export interface BootRun {
  mode: "boot";
  nodes: number;
  /** Index of the first node (MACs and UUIDs derive from it), so runs can use distinct nodes. */
  first?: number;
  /** Nodes in flight at once. */
  concurrency: number;
  /** Cycled over the nodes: windowsize 1 is lock-step, as BIOS PXE ROMs do; EDK2 asks for 4. */
  windowsizes: number[];
  node: Omit<NodeConfig, "windowsize">;
}

export type SimRun = BootRun | ({ mode: "blast" } & BlastConfig);

export function identity(i: number): Identity {
  const h = (n: number) => n.toString(16).padStart(2, "0");
  return {
    mac: `02:6b:76:${h((i >> 16) & 255)}:${h((i >> 8) & 255)}:${h(i & 255)}`,
    uuid: `6b766d73-0000-4000-8000-${i.toString(16).padStart(12, "0")}`,
  };
}

export interface StageSummary {
  ok: number;
  failed: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

export interface BootReport {
  nodes: number;
  ok: number;
  failed: number;
  wallMs: number;
  stages: Partial<Record<Stage, StageSummary>>;
  failures: { mac: string; stage: Stage; error: string }[];
  dhcpRetries: number;
  tftpResends: number;
  bytes: number;
  macs: string[];
}

const pct = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

export function summarize(results: NodeResult[], wallMs: number): BootReport {
  const stages: BootReport["stages"] = {};
  for (const s of STAGES) {
    const times = results
      .flatMap((r) => (r.ms[s] !== undefined ? [r.ms[s] as number] : []))
      .sort((a, b) => a - b);
    const failed = results.filter((r) => r.failed?.stage === s).length;
    if (!times.length && !failed) continue;
    stages[s] = {
      ok: times.length,
      failed,
      p50Ms: pct(times, 0.5),
      p95Ms: pct(times, 0.95),
      maxMs: times.at(-1) ?? 0,
    };
  }
  const failures = results.flatMap((r) => (r.failed ? [{ mac: r.mac, ...r.failed }] : []));
  return {
    nodes: results.length,
    ok: results.filter((r) => r.ok).length,
    failed: failures.length,
    wallMs: Math.round(wallMs),
    stages,
    failures: failures.slice(0, 20),
    dhcpRetries: results.reduce((n, r) => n + r.dhcpRetries, 0),
    tftpResends: results.reduce((n, r) => n + r.tftpResends, 0),
    bytes: results.reduce((n, r) => n + r.bytes, 0),
    macs: results.map((r) => r.mac),
  };
}

export async function runBoot(run: BootRun): Promise<BootReport> {
  const port = await DhcpPort.open();
  const results: NodeResult[] = [];
  const first = run.first ?? 0;
  let next = 0;
  const t = performance.now();
  const worker = async () => {
    while (next < run.nodes) {
      const i = next++;
      const windowsize = run.windowsizes[i % run.windowsizes.length] ?? 1;
      results.push(await bootNode(port, identity(first + i), { ...run.node, windowsize }));
      if (results.length % 100 === 0)
        process.stderr.write(
          `sim: ${results.length}/${run.nodes} nodes done, ${Math.round(performance.now() - t)} ms\n`,
        );
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(run.concurrency, run.nodes) }, worker));
  } finally {
    port.close();
  }
  return summarize(results, performance.now() - t);
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error("usage: sim.mjs CONFIG.json");
  const run = JSON.parse(readFileSync(file, "utf8")) as SimRun;
  const out = run.mode === "boot" ? await runBoot(run) : await blast(run);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

// Run only as the bundled entry point, not when a test imports this module.
if (process.argv[1]?.endsWith("sim.mjs"))
  main().catch((e) => {
    process.stdout.write(`${JSON.stringify({ fatal: (e as Error).message })}\n`);
    process.exit(1);
  });
