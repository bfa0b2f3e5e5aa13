// `kvmstrap metrics`: a Prometheus exporter of this host's domains (one `virsh domstats` pass per
// scrape; the vCPU group only when asked, see DOMSTATS_VCPU_GROUP) and of kvmstrap's own figures (last apply, last verify, VFs, hugepages per NUMA node).
// Scrapes that arrive while one is being collected share it: two Prometheus servers (or a retry)
// never make two virsh passes at once, and each answer is at most one collection old. The pass is
// asked of a few long-lived virsh processes (src/vm/virsh-session.ts), each for a share of the
// domains: a spawn and a libvirt connect per scrape cost more than the host figures and the
// rendering together, and the shares run at the same time.
import { isIP } from "node:net";
import Fastify from "fastify";
import { UsageError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { RootedHostFs } from "../host/fs.js";
import { type DomstatsOptions, readDomstats, readDomstatsSharded } from "../vm/domstats.js";
import { VirshSession } from "../vm/virsh-session.js";
import { SYSTEM_LIBVIRT, stateDirOf } from "./adapters.js";
import { renderScrape } from "./metrics-exposition.js";
import { hostFigures, type PfCache } from "./metrics-host.js";
import { verifyFileOf } from "./verify.js";

/**
 * virsh processes a scrape's pass is split over (readDomstatsSharded): on 20 domains here 3 and 4
 * gave the same time, 2 a fifth more; a bigger host has more cores for the shares to run on. Each
 * starts with the first scrape that has enough domains and is kept (about 10 MiB each).
 */
const DOMSTATS_SESSIONS = 4;

/** Loopback: the figures name every VM and disk of the host; exposing them is the operator's call. */
export const METRICS_LISTEN_DEFAULT = "127.0.0.1:9178";

export interface ListenAddress {
  host: string;
  port: number;
}

/** ADDR:PORT, with an IPv6 address in brackets ([::1]:9178). */
export function parseListen(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = m?.[1] ?? m?.[2];
  const port = Number(m?.[3]);
  if (!host || !isIP(host) || (m?.[1] && isIP(host) !== 6) || !(port >= 0 && port <= 65535)) {
    throw new UsageError(
      `--listen needs ADDR:PORT with an IP address (127.0.0.1:9178, [::1]:9178), not "${text}"`,
    );
  }
  return { host, port };
}

export interface MetricsOptions {
  listen?: ListenAddress;
  /** libvirt connection (default qemu:///system). */
  uri?: string;
  /** Machine root whose sysfs and state dir are read (default "/"). */
  root?: string;
  stateDir?: string;
  /** Runs one `virsh domstats` per scrape instead of keeping a virsh up (tests replay virsh with it). */
  runner?: CommandRunner;
  domstats?: DomstatsOptions;
  /** A source that starts or stops failing, once per change (stderr by default). */
  log?: (line: string) => void;
}

export interface ScrapeText {
  text: string;
  contentType: string;
}

export interface MetricsExporter {
  /** http://ADDR:PORT/metrics */
  url: string;
  /** One scrape, shared with any in flight (what GET /metrics answers). */
  scrape(): Promise<ScrapeText>;
  close(): Promise<void>;
}

/** One scrape, shared with any in flight; close() ends the virsh it keeps. */
export type Collector = (() => Promise<ScrapeText>) & { close(): Promise<void> };

/** The collector without its HTTP side: what a scrape reads and renders. */
export function metricsCollector(o: MetricsOptions = {}): Collector {
  const root = o.root ?? "/";
  const uri = o.uri ?? SYSTEM_LIBVIRT;
  const stateDir = stateDirOf(root, o.stateDir);
  const verifyFile = verifyFileOf(root, o.stateDir);
  const sessions = o.runner
    ? []
    : Array.from({ length: DOMSTATS_SESSIONS }, () => new VirshSession(uri, o.domstats?.virsh));
  const runner = o.runner ?? new ExecaRunner();
  // A RootedHostFs is one pass's (its listings and read budget): a new one per scrape.
  const pfCache: PfCache = {};
  const domstats = () =>
    sessions.length > 0 ? readDomstatsSharded(sessions, o.domstats) : readDomstats(runner, uri, o.domstats);
  const log = o.log ?? ((line: string) => process.stderr.write(`kvmstrap metrics: ${line}\n`));
  const reported = new Map<string, string>();
  const report = (source: string, reason: string | null) => {
    if ((reported.get(source) ?? null) === reason) return;
    if (reason === null) {
      reported.delete(source);
      log(`${source}: readable again`);
    } else {
      reported.set(source, reason);
      log(`${source}: ${reason}`);
    }
  };

  const collect = async (): Promise<ScrapeText> => {
    const t0 = performance.now();
    const [libvirt, host] = await Promise.all([
      domstats().then(
        (domains) => ({ domains, error: null }),
        (e: Error) => ({ domains: null, error: e.message }),
      ),
      hostFigures({ stateDir, verifyFile, fs: new RootedHostFs(root), pfCache }),
    ]);
    report("libvirt", libvirt.error);
    for (const source of ["journal", "verify", "sysfs"]) {
      report(source, host.failed.find((f) => f.source === source)?.reason ?? null);
    }
    return renderScrape({
      domains: libvirt.domains,
      libvirtError: libvirt.error,
      host,
      seconds: (performance.now() - t0) / 1000,
    });
  };

  let inFlight: Promise<ScrapeText> | null = null;
  const scrape = () => {
    inFlight ??= collect().finally(() => {
      inFlight = null;
    });
    return inFlight;
  };
  return Object.assign(scrape, {
    close: async () => {
      await Promise.all(sessions.map((s) => s.close()));
    },
  });
}

export async function startMetricsExporter(o: MetricsOptions = {}): Promise<MetricsExporter> {
  const listen = o.listen ?? parseListen(METRICS_LISTEN_DEFAULT);
  const scrape = metricsCollector(o);
  const app = Fastify({ logger: false });
  app.get("/metrics", async (_req, reply) => {
    const s = await scrape();
    return reply.header("content-type", s.contentType).header("cache-control", "no-store").send(s.text);
  });
  app.get("/", async (_req, reply) =>
    reply.type("text/plain").send("kvmstrap metrics: Prometheus figures at /metrics\n"),
  );
  await app.listen({ host: listen.host, port: listen.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : listen.port;
  const host = listen.host.includes(":") ? `[${listen.host}]` : listen.host;
  const close = async () => {
    await app.close();
    await scrape.close();
  };
  return { url: `http://${host}:${port}/metrics`, scrape, close };
}
