// `kvmstrap metrics`: the Prometheus exporter of this host's VMs and kvmstrap's own figures. The
// collection and the HTTP side are the app layer's (src/app/metrics.ts); this parses the options,
// prints where it listens and stops on SIGINT/SIGTERM.
import {
  METRICS_LISTEN_DEFAULT,
  metricsCollector,
  parseListen,
  startMetricsExporter,
} from "../app/metrics.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const METRICS_HELP = `Usage: kvmstrap metrics [options]

A Prometheus exporter (GET /metrics) of this host's VMs and of kvmstrap's own figures. Each scrape
makes one "virsh domstats" pass over every domain (10 s at most), split between a few virsh kept
running, each on its own libvirt connection (restarted when one dies); scrapes that arrive during
one share it. Per domain: its state, CPU time, memory (maximum, balloon, qemu's RSS, and what the
guest reports when its balloon driver does), and per disk and interface the bytes, requests or
packets, errors and drops (kvmstrap_domain_*); with --vcpu-stats also the vCPU counts and each
vCPU's time, wait and delay. kvmstrap's own: the last apply
run's phase and time (its journal), the last verify result, VFs per SR-IOV physical function and
hugepages free per NUMA node (sysfs). kvmstrap_source_up says which sources could be read: a
libvirtd that is down gives a scrape without domain series, not an error.

Options:
  --listen ADDR:PORT  Where to listen (default ${METRICS_LISTEN_DEFAULT}: loopback only, as the figures
                      name every VM and disk; give the management address to let Prometheus in)
  --connect URI       libvirt connection (default qemu:///system)
  --root DIR          Read sysfs and the state dir under the machine tree DIR (default /)
  --state-dir DIR     Apply journal and verify.json (default <root>/var/lib/kvmstrap)
  --vcpu-stats        Also the vCPU figures: one more qemu monitor query per running domain per
                      scrape (about 13% more scrape time on 20 idle domains here)
  --once              Print one scrape on stdout and exit (no server)
  -h, --help          Print this help

Prints "listening on URL" once the server is up. Exit: 0 stopped by SIGINT/SIGTERM (or --once
done), 2 usage error.
`;

export const METRICS_OPTIONS = {
  listen: { type: "string" },
  connect: { type: "string" },
  root: { type: "string" },
  "state-dir": { type: "string" },
  "vcpu-stats": { type: "boolean" },
  once: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function metricsCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, METRICS_OPTIONS);
  if (values.help) {
    process.stdout.write(METRICS_HELP);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const options = {
    uri: values.connect,
    root: values.root,
    stateDir: values["state-dir"],
    domstats: { vcpu: values["vcpu-stats"] === true },
  };
  if (values.once) {
    if (values.listen !== undefined) throw new UsageError("--once prints one scrape: it takes no --listen");
    const collector = metricsCollector(options);
    try {
      process.stdout.write((await collector()).text);
    } finally {
      await collector.close();
    }
    return EXIT.ok;
  }
  const listen = parseListen(values.listen ?? METRICS_LISTEN_DEFAULT);
  const exporter = await startMetricsExporter({ ...options, listen });
  process.stdout.write(`listening on ${exporter.url}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await exporter.close();
  return EXIT.ok;
}
