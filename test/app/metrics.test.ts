// kvmstrap metrics' collector and exposition: captured `virsh domstats` output (test/vm/fixtures/
// domstats) replayed through the CommandRunner port, kvmstrap's own figures from a machine tree
// (a journal written by the apply journal, a verify.json, and sysfs files for an SR-IOV PF and two
// NUMA nodes: no real SR-IOV card exists here), the text checked by the real promtool, concurrent
// scrapes sharing one virsh pass, and the CLI's options and server.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricsCollector, parseListen, startMetricsExporter } from "../../src/app/metrics.js";
import { Journal } from "../../src/apply/journal.js";
import { METRICS_HELP, metricsCommand } from "../../src/cli/metrics-command.js";
import type { CommandResult, CommandRunner } from "../../src/host/commands.js";
import { PLAN_SCHEMA_ID } from "../../src/plan/actions.js";
import { captureCli } from "../helpers/capture-cli.js";

const DOMSTATS = path.join(import.meta.dirname, "../vm/fixtures/domstats/three-domains.txt");
const hasPromtool = spawnSync("promtool", ["--version"]).status === 0;

let root = "";
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), `kvmstrap-metrics-${process.pid}-`));
  const pf = path.join(root, "sys/bus/pci/devices/0000:3b:00.0");
  await mkdir(pf, { recursive: true });
  await writeFile(path.join(pf, "sriov_totalvfs"), "64\n");
  await writeFile(path.join(pf, "sriov_numvfs"), "8\n");
  await mkdir(path.join(root, "sys/bus/pci/devices/0000:00:1f.0"), { recursive: true }); // not a PF
  for (const [node, free] of [
    ["node0", "100"],
    ["node1", "37"],
  ] as const) {
    const dir = path.join(root, `sys/devices/system/node/${node}/hugepages/hugepages-2048kB`);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "nr_hugepages"), "512\n");
    await writeFile(path.join(dir, "free_hugepages"), `${free}\n`);
  }
  const stateDir = path.join(root, "var/lib/kvmstrap");
  const journal = new Journal(stateDir);
  const run = journal.create(
    { schema: PLAN_SCHEMA_ID, answerDigest: "", actions: [], refusals: [], needsReboot: false },
    "20261206T080000.000Z-abcdef",
  );
  run.phase = "done";
  run.finishedAt = "2026-12-06T08:01:40.000Z";
  await journal.save(run);
  await writeFile(
    path.join(stateDir, "verify.json"),
    JSON.stringify({
      schema: "kvmstrap.verify/1",
      status: "fail",
      time: "2026-12-06T08:05:00.000Z",
      durationMs: 1200,
      hostname: "h1",
      kernel: "6.1.0",
      root: "/",
      live: true,
      source: { kind: "journal" },
      counts: { pass: 5, fail: 1, warn: 0, unknown: 2 },
      failed: ["bridge.br0"],
      checks: [],
    }),
  );
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/** Replays the capture for virsh; `gate` holds each run until released. */
function virshReplay(gate?: Promise<void>) {
  let calls = 0;
  const runner: CommandRunner = {
    async run(): Promise<CommandResult> {
      calls++;
      await gate;
      return { exitCode: 0, stdout: await readFile(DOMSTATS, "utf8"), stderr: "", timedOut: false };
    },
    which: async () => "/usr/bin/virsh",
  };
  return { runner, calls: () => calls };
}

/** Samples of one metric: labels (as text) to value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m?.[1] === name) out.set(m[2] ?? "", Number(m[3]));
  }
  return out;
}

const promtool = (text: string) =>
  spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8", timeout: 20_000 });

describe("a scrape of captured domstats and a machine tree", () => {
  it("has every domain's series in base units, and kvmstrap's own figures", async () => {
    const logs: string[] = [];
    const { text } = await metricsCollector({
      root,
      runner: virshReplay().runner,
      log: (l) => logs.push(l),
    })();
    const state = samples(text, "kvmstrap_domain_state");
    expect(state.get('{domain="m1",state="running"}')).toBe(1);
    expect(state.get('{domain="m2",state="shutoff"}')).toBe(1);
    expect(state.get('{domain="m2",state="running"}')).toBe(0);
    expect(samples(text, "kvmstrap_domain_cpu_seconds_total").get('{domain="m1"}')).toBeCloseTo(0.34);
    expect(samples(text, "kvmstrap_domain_vcpu_seconds_total").get('{domain="m0",vcpu="0"}')).toBeCloseTo(
      0.16,
    );
    expect(samples(text, "kvmstrap_domain_memory_balloon_bytes").get('{domain="m2"}')).toBe(32 * 2 ** 20);
    expect(samples(text, "kvmstrap_domain_memory_rss_bytes").get('{domain="m1"}')).toBe(41252 * 1024);
    expect([...samples(text, "kvmstrap_domain_block_read_bytes_total")]).toEqual([
      ['{domain="m1",disk="vda"}', 512],
      ['{domain="m1",disk="vdb"}', 0],
      ['{domain="m0",disk="vda"}', 512],
    ]);
    expect(samples(text, "kvmstrap_domain_block_capacity_bytes").get('{domain="m2",disk="vda"}')).toBe(
      1048576,
    );
    expect(
      samples(text, "kvmstrap_domain_network_receive_packets_total").get('{domain="m1",interface="vnet1"}'),
    ).toBe(1);
    // The shut-off domain has no interface series.
    expect(
      [...samples(text, "kvmstrap_domain_network_receive_bytes_total").keys()].some((k) => k.includes("m2")),
    ).toBe(false);

    expect(samples(text, "kvmstrap_last_apply_timestamp_seconds").get("")).toBe(
      Date.parse("2026-12-06T08:01:40Z") / 1000,
    );
    expect(
      samples(text, "kvmstrap_last_apply_phase").get('{phase="done",run_id="20261206T080000.000Z-abcdef"}'),
    ).toBe(1);
    expect(samples(text, "kvmstrap_last_verify_success").get("")).toBe(0);
    expect(samples(text, "kvmstrap_last_verify_checks").get('{status="fail"}')).toBe(1);
    expect([...samples(text, "kvmstrap_sriov_vfs")]).toEqual([['{pf="0000:3b:00.0"}', 8]]);
    expect(samples(text, "kvmstrap_sriov_vfs_max").get('{pf="0000:3b:00.0"}')).toBe(64);
    expect([...samples(text, "kvmstrap_hugepages_free")]).toEqual([
      ['{node="0",size="2048kB"}', 100],
      ['{node="1",size="2048kB"}', 37],
    ]);
    expect([...samples(text, "kvmstrap_source_up").values()]).toEqual([1, 1, 1, 1]);
    expect(logs).toEqual([]);
  });

  it.skipIf(!hasPromtool)(
    "passes promtool check metrics (skipped without promtool: Debian prometheus)",
    async () => {
      const { text } = await metricsCollector({ root, runner: virshReplay().runner })();
      const r = promtool(text);
      expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
    },
  );

  it("VF counts are read on every scrape; a device list that changed, or a PF gone, is probed again", async () => {
    const tree = await mkdtemp(path.join(tmpdir(), `kvmstrap-metrics-pf-${process.pid}-`));
    try {
      const devices = path.join(tree, "sys/bus/pci/devices");
      const pf = async (addr: string, total: string, num: string) => {
        await mkdir(path.join(devices, addr), { recursive: true });
        await writeFile(path.join(devices, addr, "sriov_totalvfs"), total);
        await writeFile(path.join(devices, addr, "sriov_numvfs"), num);
      };
      await pf("0000:3b:00.0", "64\n", "8\n");
      await mkdir(path.join(devices, "0000:00:1f.0"), { recursive: true });
      const collect = metricsCollector({ root: tree, runner: virshReplay().runner, log: () => {} });
      const vfs = async () => [...samples((await collect()).text, "kvmstrap_sriov_vfs")];
      expect(await vfs()).toEqual([['{pf="0000:3b:00.0"}', 8]]);
      await writeFile(path.join(devices, "0000:3b:00.0", "sriov_numvfs"), "16\n");
      expect(await vfs()).toEqual([['{pf="0000:3b:00.0"}', 16]]);
      await pf("0000:af:00.0", "32\n", "4\n");
      expect(await vfs()).toEqual([
        ['{pf="0000:3b:00.0"}', 16],
        ['{pf="0000:af:00.0"}', 4],
      ]);
      // Same device list, but the device at an address swapped for one without SR-IOV between two
      // scrapes: gone from this scrape...
      await rm(path.join(devices, "0000:3b:00.0", "sriov_totalvfs"));
      expect(await vfs()).toEqual([['{pf="0000:af:00.0"}', 4]]);
      // ...and every device is probed again on the next, so one that became a PF is found.
      await writeFile(path.join(devices, "0000:00:1f.0", "sriov_totalvfs"), "8\n");
      expect(await vfs()).toEqual([
        ['{pf="0000:00:1f.0"}', 0],
        ['{pf="0000:af:00.0"}', 4],
      ]);
      await collect.close();
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it("scrapes during a collection share its one virsh pass; the next one makes a new pass", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const { runner, calls } = virshReplay(gate);
    const scrape = metricsCollector({ root, runner });
    const first = [scrape(), scrape(), scrape()];
    await new Promise((r) => setTimeout(r, 20));
    expect(calls()).toBe(1);
    release();
    const texts = await Promise.all(first);
    expect(new Set(texts.map((t) => t.text)).size).toBe(1);
    await scrape();
    expect(calls()).toBe(2);
  });

  it("a libvirtd that is down and a corrupt journal: source up 0, the rest still served, told once", async () => {
    const broken = await mkdtemp(path.join(tmpdir(), `kvmstrap-metrics-broken-${process.pid}-`));
    try {
      await mkdir(path.join(broken, "runs"));
      await writeFile(path.join(broken, "runs/20261206T000000.000Z-000000.json"), "{not json");
      const logs: string[] = [];
      const down: CommandRunner = {
        run: async () => ({
          exitCode: 1,
          stdout: "",
          stderr: "error: failed to connect to the hypervisor\n",
          timedOut: false,
        }),
        which: async () => null,
      };
      const scrape = metricsCollector({ root, stateDir: broken, runner: down, log: (l) => logs.push(l) });
      const { text } = await scrape();
      await scrape();
      const up = samples(text, "kvmstrap_source_up");
      expect(up.get('{source="libvirt"}')).toBe(0);
      expect(up.get('{source="journal"}')).toBe(0);
      expect(up.get('{source="sysfs"}')).toBe(1);
      expect(samples(text, "kvmstrap_domain_state").size).toBe(0);
      expect(samples(text, "kvmstrap_hugepages_free").size).toBe(2);
      expect(logs).toHaveLength(2);
      expect(logs.join("\n")).toMatch(/libvirt: failed to connect/);
      expect(logs.join("\n")).toMatch(/journal: journal .* is corrupt/);
      if (hasPromtool) expect(promtool(text).status).toBe(0);
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});

describe("kvmstrap metrics command", () => {
  it("--listen takes ADDR:PORT with an IP address; anything else is a usage error", () => {
    expect(parseListen("127.0.0.1:9178")).toEqual({ host: "127.0.0.1", port: 9178 });
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 });
    for (const bad of ["9178", "localhost:9178", "127.0.0.1:99999", "::1:9178", "1.2.3.4:"]) {
      expect(() => parseListen(bad), bad).toThrow(/--listen needs ADDR:PORT/);
    }
  });

  it("says in --help that it listens on loopback by default", async () => {
    expect(METRICS_HELP).toMatch(/default 127\.0\.0\.1:9178: loopback only/);
    const r = await captureCli(() => metricsCommand(["--listen", "nowhere"]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--listen needs ADDR:PORT/);
  });

  it("--once prints one scrape; with no libvirtd at the URI (real virsh) it still has the host's figures", async () => {
    if (spawnSync("virsh", ["--version"]).status !== 0) return expect.fail("virsh missing: libvirt-clients");
    const r = await captureCli(() =>
      metricsCommand([
        "--once",
        "--root",
        root,
        "--connect",
        `qemu+unix:///system?socket=${root}/no-such-sock`,
      ]),
    );
    expect(r.code).toBe(0);
    expect(samples(r.stdout, "kvmstrap_source_up").get('{source="libvirt"}')).toBe(0);
    expect(samples(r.stdout, "kvmstrap_sriov_vfs").get('{pf="0000:3b:00.0"}')).toBe(8);
    expect(r.stderr).toMatch(/kvmstrap metrics: libvirt: .*(connect|socket)/i);
  });

  it("the server answers GET /metrics with the exposition content type", async () => {
    const exporter = await startMetricsExporter({
      listen: { host: "127.0.0.1", port: 0 },
      root,
      runner: virshReplay().runner,
    });
    try {
      expect(exporter.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const res = await fetch(exporter.url);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await res.text()).toMatch(/^kvmstrap_domain_state\{domain="m0",state="running"\} 1$/m);
      // curl, as an operator would, sees the same.
      expect((await execa("curl", ["-sf", "--max-time", "10", exporter.url])).stdout).toMatch(
        /kvmstrap_source_up/,
      );
    } finally {
      await exporter.close();
    }
  });
});
