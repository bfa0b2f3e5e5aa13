// Prometheus metrics of `kvmstrap serve` (GET /metrics), built with prom-client on a registry of
// the server's own (never the global one: two servers in one process, as in tests, stay apart).
// Everything is read off the node table's event stream, the one place the server's work is told,
// so the metrics cannot disagree with `kvmstrap serve status`.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { NODE_STATES } from "./node-state.js";
import type { NodeTable, ServeEvent } from "./node-table.js";

/** Boot (power-on to appliance up) under TCG takes minutes; real iron 1-5 minutes. */
const BOOT_BUCKETS = [15, 30, 60, 120, 180, 300, 600, 1200];
/** An install (answer fetched to installed) takes minutes to tens of minutes. */
const INSTALL_BUCKETS = [60, 120, 300, 600, 900, 1800, 3600];

export interface ServeMetrics {
  readonly contentType: string;
  text(): Promise<string>;
  close(): void;
}

export function serveMetrics(table: NodeTable): ServeMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "kvmstrap_serve_" });

  new Gauge({
    name: "kvmstrap_nodes",
    help: "Nodes the boot server tracks, by state.",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
      for (const node of table.all()) counts.set(node.state, (counts.get(node.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  const boot = new Histogram({
    name: "kvmstrap_node_boot_seconds",
    help: "From a node's first request to the appliance reporting in.",
    buckets: BOOT_BUCKETS,
    registers: [registry],
  });
  const install = new Histogram({
    name: "kvmstrap_node_install_seconds",
    help: "From a node fetching its answer to its install reported done.",
    buckets: INSTALL_BUCKETS,
    registers: [registry],
  });
  const inputs = new Counter({
    name: "kvmstrap_node_inputs_total",
    help: "Inputs to the node state machine (boot requests and the appliance's events), by input.",
    labelNames: ["input"],
    registers: [registry],
  });
  const stalls = new Counter({
    name: "kvmstrap_node_stalls_total",
    help: "Nodes that made no progress within their state's timeout, by the state they stopped in.",
    labelNames: ["state"],
    registers: [registry],
  });
  const tftpBytes = new Counter({
    name: "kvmstrap_tftp_bytes_total",
    help: "Bytes sent by TFTP transfers, by outcome.",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const tftpTransfers = new Counter({
    name: "kvmstrap_tftp_transfers_total",
    help: "TFTP transfers, by outcome.",
    labelNames: ["outcome"],
    registers: [registry],
  });
  const tftpRetransmits = new Counter({
    name: "kvmstrap_tftp_retransmitted_blocks_total",
    help: "TFTP DATA blocks sent again after a timeout.",
    registers: [registry],
  });
  const httpBytes = new Counter({
    name: "kvmstrap_http_artifact_bytes_total",
    help: "Netboot artifact bytes sent to nodes over HTTP (finished and cut-off downloads).",
    registers: [registry],
  });

  // The answer-fetched time per node, for the install duration; bounded by the table's own size
  // (an entry leaves at "installed", "failed" or a re-arm).
  const answerAt = new Map<string, number>();
  const onEvent = (e: ServeEvent) => {
    switch (e.type) {
      case "transfer":
        tftpTransfers.inc({ outcome: e.outcome });
        tftpBytes.inc({ outcome: e.outcome }, e.bytes);
        tftpRetransmits.inc(e.retransmits);
        return;
      case "node-progress":
        inputs.inc({ input: e.input });
        if ((e.input === "http-done" || e.input === "http-aborted") && e.bytes) httpBytes.inc(e.bytes);
        return;
      case "node-unexpected":
        inputs.inc({ input: e.input });
        return;
      case "node-state": {
        inputs.inc({ input: e.input });
        const t = Date.parse(e.time);
        if (e.state === "appliance-up") boot.observe(e.elapsedMs / 1000);
        if (e.state === "answer-fetched") answerAt.set(e.mac, t);
        if (e.state === "stalled") stalls.inc({ state: e.from });
        if (e.state === "installed" || e.state === "failed" || e.state === "discovered") {
          const since = answerAt.get(e.mac);
          if (since !== undefined && e.state === "installed") install.observe((t - since) / 1000);
          answerAt.delete(e.mac);
        }
        return;
      }
      default:
        return;
    }
  };
  const off = table.subscribe(onEvent);
  return {
    contentType: registry.contentType,
    text: () => registry.metrics(),
    close: off,
  };
}
