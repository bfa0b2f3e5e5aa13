// The Prometheus text of one scrape of `kvmstrap metrics`, built with prom-client (as serve's
// /metrics is) on a registry made for that scrape: the figures are absolute readings of libvirt and
// sysfs, not events counted here, and a domain that is gone must leave no stale series behind.
// Names follow Prometheus' conventions: base units (seconds, bytes), _total on counters, one metric
// per quantity with the device in a label (disk="vda", interface="vnet0").
import { Counter, Gauge, Registry } from "prom-client";
import { runStatePhaseSchema } from "../apply/journal.js";
import { DOMAIN_STATES, type DomainStats, type StatsDevice, statNumber } from "../vm/domstats.js";
import type { HostFigures } from "./metrics-host.js";

export interface Scrape {
  /** null: libvirt could not be read this time (libvirtError says why). */
  domains: DomainStats[] | null;
  libvirtError: string | null;
  host: HostFigures;
  /** How long the collection took. */
  seconds: number;
}

type Kind = "counter" | "gauge";
/** A metric read from one domstats key: [name, kind, key, scale to base units, help]. */
type Field = readonly [string, Kind, string, number, string];

const NS = 1e-9;
const KIB = 1024;

const DOMAIN_FIELDS: readonly Field[] = [
  ["kvmstrap_domain_cpu_seconds_total", "counter", "cpu.time", NS, "CPU time of the domain's qemu."],
  ["kvmstrap_domain_cpu_user_seconds_total", "counter", "cpu.user", NS, "User-mode CPU time of the domain."],
  ["kvmstrap_domain_cpu_system_seconds_total", "counter", "cpu.system", NS, "Kernel CPU time of the domain."],
  ["kvmstrap_domain_vcpus", "gauge", "vcpu.current", 1, "vCPUs the domain has now."],
  ["kvmstrap_domain_vcpus_max", "gauge", "vcpu.maximum", 1, "vCPUs the domain may have."],
  ["kvmstrap_domain_memory_max_bytes", "gauge", "balloon.maximum", KIB, "Memory the domain may have."],
  ["kvmstrap_domain_memory_balloon_bytes", "gauge", "balloon.current", KIB, "Memory the balloon leaves it."],
  ["kvmstrap_domain_memory_rss_bytes", "gauge", "balloon.rss", KIB, "Resident memory of the domain's qemu."],
  ["kvmstrap_domain_memory_available_bytes", "gauge", "balloon.available", KIB, "Memory the guest sees."],
  ["kvmstrap_domain_memory_unused_bytes", "gauge", "balloon.unused", KIB, "Memory the guest leaves unused."],
  ["kvmstrap_domain_memory_usable_bytes", "gauge", "balloon.usable", KIB, "Memory the guest could use."],
];
const VCPU_FIELDS: readonly Field[] = [
  ["kvmstrap_domain_vcpu_seconds_total", "counter", "time", NS, "CPU time of one vCPU."],
  ["kvmstrap_domain_vcpu_wait_seconds_total", "counter", "wait", NS, "Time a vCPU waited on I/O."],
  ["kvmstrap_domain_vcpu_delay_seconds_total", "counter", "delay", NS, "Time a vCPU was runnable, not run."],
];
const BLOCK_FIELDS: readonly Field[] = [
  ["kvmstrap_domain_block_read_bytes_total", "counter", "rd.bytes", 1, "Bytes read from a disk."],
  ["kvmstrap_domain_block_write_bytes_total", "counter", "wr.bytes", 1, "Bytes written to a disk."],
  ["kvmstrap_domain_block_read_requests_total", "counter", "rd.reqs", 1, "Read requests to a disk."],
  ["kvmstrap_domain_block_write_requests_total", "counter", "wr.reqs", 1, "Write requests to a disk."],
  ["kvmstrap_domain_block_flush_requests_total", "counter", "fl.reqs", 1, "Flush requests to a disk."],
  ["kvmstrap_domain_block_read_seconds_total", "counter", "rd.times", NS, "Time spent reading a disk."],
  ["kvmstrap_domain_block_write_seconds_total", "counter", "wr.times", NS, "Time spent writing a disk."],
  ["kvmstrap_domain_block_capacity_bytes", "gauge", "capacity", 1, "Size of a disk as the guest sees it."],
  [
    "kvmstrap_domain_block_allocation_bytes",
    "gauge",
    "allocation",
    1,
    "Bytes of a disk allocated on the host.",
  ],
];
const NET_FIELDS: readonly Field[] = [
  ["kvmstrap_domain_network_receive_bytes_total", "counter", "rx.bytes", 1, "Bytes an interface received."],
  [
    "kvmstrap_domain_network_receive_packets_total",
    "counter",
    "rx.pkts",
    1,
    "Packets an interface received.",
  ],
  [
    "kvmstrap_domain_network_receive_errors_total",
    "counter",
    "rx.errs",
    1,
    "Receive errors of an interface.",
  ],
  ["kvmstrap_domain_network_receive_drops_total", "counter", "rx.drop", 1, "Received packets dropped."],
  ["kvmstrap_domain_network_transmit_bytes_total", "counter", "tx.bytes", 1, "Bytes an interface sent."],
  ["kvmstrap_domain_network_transmit_packets_total", "counter", "tx.pkts", 1, "Packets an interface sent."],
  [
    "kvmstrap_domain_network_transmit_errors_total",
    "counter",
    "tx.errs",
    1,
    "Transmit errors of an interface.",
  ],
  ["kvmstrap_domain_network_transmit_drops_total", "counter", "tx.drop", 1, "Packets to send dropped."],
];

type Labels = Record<string, string>;
type Setter = (labels: Labels, value: number) => void;

function metric(registry: Registry, kind: Kind, name: string, help: string, labelNames: string[]): Setter {
  if (kind === "counter") {
    const c = new Counter({ name, help, labelNames, registers: [registry] });
    // libvirt reports -1 for a figure a driver lacks: absent, not a counter going backwards.
    return (labels, value) => {
      if (value >= 0) c.inc(labels, value);
    };
  }
  const g = new Gauge({ name, help, labelNames, registers: [registry] });
  return (labels, value) => g.set(labels, value);
}

function fieldMetrics(registry: Registry, fields: readonly Field[], labelNames: string[]) {
  return fields.map(([name, kind, key, scale, help]) => ({
    key,
    scale,
    set: metric(registry, kind, name, help, labelNames),
  }));
}

function domainSeries(registry: Registry, domains: DomainStats[]): void {
  const state = metric(registry, "gauge", "kvmstrap_domain_state", "1 for the state the domain is in.", [
    "domain",
    "state",
  ]);
  const perDomain = fieldMetrics(registry, DOMAIN_FIELDS, ["domain"]);
  const perVcpu = fieldMetrics(registry, VCPU_FIELDS, ["domain", "vcpu"]);
  const perDisk = fieldMetrics(registry, BLOCK_FIELDS, ["domain", "disk"]);
  const perNic = fieldMetrics(registry, NET_FIELDS, ["domain", "interface"]);
  const each = (ms: ReturnType<typeof fieldMetrics>, fields: ReadonlyMap<string, string>, labels: Labels) => {
    for (const m of ms) {
      const v = statNumber(fields, m.key);
      if (v !== null) m.set(labels, v * m.scale);
    }
  };
  const devices = (
    ms: ReturnType<typeof fieldMetrics>,
    devs: StatsDevice[],
    domain: string,
    label: string,
  ) => {
    for (const d of devs) each(ms, d.fields, { domain, [label]: d.name ?? String(d.index) });
  };
  for (const d of domains) {
    if (d.state) for (const s of DOMAIN_STATES) state({ domain: d.name, state: s }, s === d.state ? 1 : 0);
    each(perDomain, d.fields, { domain: d.name });
    devices(perVcpu, d.vcpus, d.name, "vcpu");
    devices(perDisk, d.blocks, d.name, "disk");
    devices(perNic, d.nets, d.name, "interface");
  }
}

function hostSeries(registry: Registry, host: HostFigures): void {
  if (host.apply) {
    const a = host.apply;
    metric(
      registry,
      "gauge",
      "kvmstrap_last_apply_timestamp_seconds",
      "When the last apply run ended (or last wrote its journal).",
      [],
    )({}, a.time);
    const phase = metric(
      registry,
      "gauge",
      "kvmstrap_last_apply_phase",
      "1 for the phase the last apply run is in.",
      ["phase", "run_id"],
    );
    for (const p of runStatePhaseSchema.options) phase({ phase: p, run_id: a.runId }, p === a.phase ? 1 : 0);
  }
  if (host.verify) {
    const v = host.verify;
    metric(
      registry,
      "gauge",
      "kvmstrap_last_verify_timestamp_seconds",
      "When kvmstrap verify last ran.",
      [],
    )({}, v.time);
    metric(
      registry,
      "gauge",
      "kvmstrap_last_verify_success",
      "1 when the last kvmstrap verify passed.",
      [],
    )({}, v.status === "pass" ? 1 : 0);
    const checks = metric(
      registry,
      "gauge",
      "kvmstrap_last_verify_checks",
      "Checks of the last verify, by status.",
      ["status"],
    );
    for (const [status, n] of Object.entries(v.counts)) checks({ status }, n);
  }
  const vfs = metric(registry, "gauge", "kvmstrap_sriov_vfs", "VFs enabled on an SR-IOV physical function.", [
    "pf",
  ]);
  const vfsMax = metric(
    registry,
    "gauge",
    "kvmstrap_sriov_vfs_max",
    "VFs an SR-IOV physical function supports.",
    ["pf"],
  );
  for (const p of host.sriov) {
    vfs({ pf: p.pf }, p.numVfs);
    vfsMax({ pf: p.pf }, p.totalVfs);
  }
  const free = metric(
    registry,
    "gauge",
    "kvmstrap_hugepages_free",
    "Free hugepages of a NUMA node, by page size.",
    ["node", "size"],
  );
  const configured = metric(
    registry,
    "gauge",
    "kvmstrap_hugepages_configured",
    "Hugepages reserved on a NUMA node, by page size.",
    ["node", "size"],
  );
  for (const h of host.hugepages) {
    free({ node: h.node, size: h.size }, h.free);
    configured({ node: h.node, size: h.size }, h.total);
  }
}

/** The exposition text of one scrape, and its content type. */
export async function renderScrape(s: Scrape): Promise<{ text: string; contentType: string }> {
  const registry = new Registry();
  const up = metric(
    registry,
    "gauge",
    "kvmstrap_source_up",
    "1 when a source of these figures could be read this scrape.",
    ["source"],
  );
  up({ source: "libvirt" }, s.domains ? 1 : 0);
  for (const source of ["journal", "verify", "sysfs"] as const) {
    up({ source }, s.host.failed.some((f) => f.source === source) ? 0 : 1);
  }
  metric(
    registry,
    "gauge",
    "kvmstrap_scrape_collect_seconds",
    "How long reading libvirt and the host took.",
    [],
  )({}, s.seconds);
  if (s.domains) domainSeries(registry, s.domains);
  hostSeries(registry, s.host);
  return { text: await registry.metrics(), contentType: registry.contentType };
}
