// `kvmstrap metrics` (the built CLI) against a test-owned libvirtd with three running domains and
// one never started (test/e2e/idle-domains.ts: no OS, an idle boot sector, TCG), scraped with curl:
// promtool check metrics passes on the text, every domain has its series with plausible values, CPU
// time grows between two scrapes, a domain destroyed between scrapes shows as shut off; and
// prometheus-libvirt-exporter, run against the same libvirtd, sees the same running domains and the
// same disk figures.
import { mkdtemp, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa, type ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../helpers/free-port.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import {
  defineIdleDomain,
  type LibvirtExporter,
  startIdleNetwork,
  startLibvirtExporter,
  waitIdle,
} from "./idle-domains.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const RUNNING = ["kvst-m-a", "kvst-m-b", "kvst-m-c"];
const NEVER_STARTED = "kvst-m-off";
const TWO_DISKS = "kvst-m-b";

let daemon: TestLibvirtd | undefined;
let work = "";
let exporter: ResultPromise | undefined;
let url = "";
let libvirtExporter: LibvirtExporter | undefined;

beforeAll(async () => {
  daemon = await startTestLibvirtd();
  work = await mkdtemp(path.join("/var/tmp", `kvmstrap-metrics-e2e-${process.pid}-`));
  await startIdleNetwork(daemon.uri, work);
  for (const name of RUNNING)
    await defineIdleDomain(daemon.uri, work, { name, disks: name === TWO_DISKS ? 2 : 1 });
  await defineIdleDomain(daemon.uri, work, { name: NEVER_STARTED, start: false });
  // Under TCG on a busy machine SeaBIOS may take seconds to read the boot sector: the figures below
  // (vda's reads, vCPU time) are those of a domain that has booted.
  await waitIdle(daemon.uri, RUNNING);
  const port = await freeTcp();
  exporter = execa(
    process.execPath,
    [
      path.join(projectRoot, "bin/kvmstrap.js"),
      "metrics",
      "--connect",
      daemon.uri,
      "--listen",
      `127.0.0.1:${port}`,
      "--state-dir",
      path.join(work, "state"),
    ],
    { reject: false, env: { LC_ALL: "C" } },
  );
  const listening = await new Promise<string>((resolve, reject) => {
    let out = "";
    exporter?.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    void exporter?.then((r) => reject(new Error(`kvmstrap metrics exited ${r.exitCode}: ${r.stderr}`)));
  });
  url = listening;
});
afterAll(async () => {
  await libvirtExporter?.stop();
  if (exporter && exporter.exitCode === null) {
    exporter.kill("SIGTERM");
    await exporter;
  }
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

// As served, final newline included (promtool needs it).
const curl = async (u = url) =>
  (await execa("curl", ["-sSf", "--max-time", "15", u], { stripFinalNewline: false })).stdout;

/** Samples of one metric: labels (as text) to value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m?.[1] === name) out.set(m[2] ?? "", Number(m[3]));
  }
  return out;
}
const one = (text: string, name: string, labels: string) => samples(text, name).get(labels);
const domainsIn = (text: string, name: string) =>
  new Set([...samples(text, name).keys()].map((k) => /domain="([^"]+)"/.exec(k)?.[1]));

describe("kvmstrap metrics on a test-owned libvirtd", () => {
  it("a scrape passes promtool and has each domain's series with plausible values", async () => {
    const text = await curl();
    const check = await execa("promtool", ["check", "metrics"], { input: text, reject: false });
    expect(check.exitCode, `${check.stdout}${check.stderr}`).toBe(0);
    expect(one(text, "kvmstrap_source_up", '{source="libvirt"}')).toBe(1);
    for (const d of RUNNING) {
      expect(one(text, "kvmstrap_domain_state", `{domain="${d}",state="running"}`), d).toBe(1);
      expect(one(text, "kvmstrap_domain_cpu_seconds_total", `{domain="${d}"}`), d).toBeGreaterThan(0);
      expect(one(text, "kvmstrap_domain_memory_max_bytes", `{domain="${d}"}`), d).toBe(32 * 2 ** 20);
      expect(one(text, "kvmstrap_domain_memory_rss_bytes", `{domain="${d}"}`), d).toBeGreaterThan(2 ** 20);
      // SeaBIOS read the boot sector: at least one request of 512 bytes on vda.
      expect(
        one(text, "kvmstrap_domain_block_read_bytes_total", `{domain="${d}",disk="vda"}`),
        d,
      ).toBeGreaterThanOrEqual(512);
      expect(
        one(text, "kvmstrap_domain_block_read_requests_total", `{domain="${d}",disk="vda"}`),
        d,
      ).toBeGreaterThanOrEqual(1);
      expect(one(text, "kvmstrap_domain_block_capacity_bytes", `{domain="${d}",disk="vda"}`), d).toBe(
        2 ** 20,
      );
      const nics = [...samples(text, "kvmstrap_domain_network_receive_bytes_total").keys()].filter((k) =>
        k.includes(`domain="${d}"`),
      );
      expect(nics, d).toHaveLength(1);
      expect(nics[0]).toMatch(/interface="vnet\d+"/);
      expect(
        one(text, "kvmstrap_domain_network_transmit_packets_total", nics[0] ?? ""),
      ).toBeGreaterThanOrEqual(0);
    }
    expect(one(text, "kvmstrap_domain_block_capacity_bytes", `{domain="${TWO_DISKS}",disk="vdb"}`)).toBe(
      2 ** 20,
    );
    expect(one(text, "kvmstrap_domain_state", `{domain="${NEVER_STARTED}",state="shutoff"}`)).toBe(1);
    expect(one(text, "kvmstrap_domain_state", `{domain="${NEVER_STARTED}",state="running"}`)).toBe(0);
    // The vCPU group is an option (it costs a monitor query per domain): not in the default scrape.
    expect(domainsIn(text, "kvmstrap_domain_vcpu_seconds_total").size).toBe(0);
    expect(domainsIn(text, "kvmstrap_domain_vcpus").size).toBe(0);
  });

  it("--vcpu-stats adds each running domain's vCPU count and per-vCPU time", async () => {
    const r = await execa(
      process.execPath,
      [
        path.join(projectRoot, "bin/kvmstrap.js"),
        "metrics",
        "--once",
        "--vcpu-stats",
        "--connect",
        daemon?.uri ?? "",
        "--state-dir",
        path.join(work, "state"),
      ],
      { reject: false, env: { LC_ALL: "C" } },
    );
    expect(r.exitCode, r.stderr).toBe(0);
    // execa strips the last newline, which the exposition format requires.
    const check = await execa("promtool", ["check", "metrics"], { input: `${r.stdout}\n`, reject: false });
    expect(check.exitCode, `${check.stdout}${check.stderr}`).toBe(0);
    for (const d of RUNNING) {
      expect(one(r.stdout, "kvmstrap_domain_vcpus", `{domain="${d}"}`), d).toBe(1);
      expect(
        one(r.stdout, "kvmstrap_domain_vcpu_seconds_total", `{domain="${d}",vcpu="0"}`),
        d,
      ).toBeGreaterThan(0);
    }
    expect(domainsIn(r.stdout, "kvmstrap_domain_vcpu_seconds_total").has(NEVER_STARTED)).toBe(false);
  });

  it("CPU time grows between two scrapes", async () => {
    const before = await curl();
    await sleep(2500);
    const after = await curl();
    for (const d of RUNNING) {
      const key = `{domain="${d}"}`;
      expect(one(after, "kvmstrap_domain_cpu_seconds_total", key), d).toBeGreaterThan(
        one(before, "kvmstrap_domain_cpu_seconds_total", key) ?? Number.POSITIVE_INFINITY,
      );
    }
  });

  it("prometheus-libvirt-exporter on the same libvirtd sees the same running domains and disk figures", async () => {
    if (!daemon) throw new Error("no test libvirtd");
    libvirtExporter = await startLibvirtExporter(daemon.uri);
    const [theirs, ours] = await Promise.all([curl(libvirtExporter.url), curl()]);
    expect(one(theirs, "libvirt_up", "")).toBe(1);
    // It lists running domains only; kvmstrap lists every defined one with its state.
    expect(domainsIn(theirs, "libvirt_domain_state_code")).toEqual(new Set(RUNNING));
    const running = [...samples(ours, "kvmstrap_domain_state")]
      .filter(([k, v]) => v === 1 && k.includes('state="running"'))
      .map(([k]) => /domain="([^"]+)"/.exec(k)?.[1]);
    expect(new Set(running)).toEqual(new Set(RUNNING));
    // The disks idle after the boot sector: the same figures on both sides.
    for (const d of RUNNING) {
      const theirsRead = [...samples(theirs, "libvirt_domain_block_stats_read_bytes_total")]
        .filter(([k]) => k.includes(`domain="${d}"`) && k.includes('target_device="vda"'))
        .map(([, v]) => v);
      expect(theirsRead, d).toEqual([
        one(ours, "kvmstrap_domain_block_read_bytes_total", `{domain="${d}",disk="vda"}`),
      ]);
    }
  });

  it("a domain destroyed between scrapes shows as shut off, its devices gone", async () => {
    if (!daemon) throw new Error("no test libvirtd");
    const victim = RUNNING[2] as string;
    await execa("virsh", ["-c", daemon.uri, "destroy", victim], { env: { LC_ALL: "C" } });
    const text = await curl();
    expect(one(text, "kvmstrap_domain_state", `{domain="${victim}",state="shutoff"}`)).toBe(1);
    expect(one(text, "kvmstrap_domain_state", `{domain="${victim}",state="running"}`)).toBe(0);
    expect(domainsIn(text, "kvmstrap_domain_network_receive_bytes_total").has(victim)).toBe(false);
    expect(one(text, "kvmstrap_domain_state", `{domain="${RUNNING[0]}",state="running"}`)).toBe(1);
  });

  it("stops on SIGTERM with exit 0", async () => {
    if (!exporter) throw new Error("no exporter");
    exporter.kill("SIGTERM");
    const r = await exporter;
    expect(r.exitCode, String(r.stderr)).toBe(0);
  });
});
