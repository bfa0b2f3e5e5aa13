import { inspect } from "../app/inspect.js";
import { withMachine } from "../app/machine.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";
import { renderReport } from "./render-report.js";
import { makeStyle } from "./style.js";

export const DETECT_HELP = `Usage: kvmstrap detect [options]

Inventory the machine (CPU, KVM, IOMMU, PCI, NICs, disks, memory, firmware) and check that it is
ready for KVM. Exit 0 when no fail-level check fails, 1 otherwise, 2 on usage or input errors.

Options:
  --json               Print {report, checks, verdict} as JSON
  --root DIR           Read /proc and /sys under DIR (an extracted snapshot) instead of this host
  --snapshot FILE      Read a snapshot made by "kvmstrap snapshot" (FILE.tar.gz)
  --probe MODE         Functional KVM probe on the live host: auto (default: reuse this boot's
                       result), always (run again), never
  --probe-kernel FILE  Kernel image the probe boots (default: /boot/vmlinuz-$(uname -r), /boot/vmlinuz,
                       /vmlinuz, $KVMSTRAP_PROBE_KERNEL)
  --no-color           No colour (also when NO_COLOR is set or output is not a terminal)
  -h, --help           Print this help
`;

export const DETECT_OPTIONS = {
  json: { type: "boolean" },
  root: { type: "string" },
  snapshot: { type: "string" },
  probe: { type: "string" },
  "probe-kernel": { type: "string" },
  "no-color": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function detectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, DETECT_OPTIONS);
  if (values.help) {
    process.stdout.write(DETECT_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`detect takes no arguments (got "${positionals[0]}")`);
  const probe = values.probe ?? "auto";
  if (probe !== "auto" && probe !== "always" && probe !== "never") {
    throw new UsageError(`--probe must be auto, always or never (got "${probe}")`);
  }
  return withMachine(values, async (machine) => {
    const {
      report,
      checks,
      verdict: v,
    } = await inspect(machine, {
      mode: probe,
      kernel: values["probe-kernel"] ?? null,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ report, checks, verdict: v }, null, 2)}\n`);
    } else {
      const style = makeStyle(process.stdout, process.env, values["no-color"] ? false : undefined);
      const width = process.stdout.isTTY ? (process.stdout.columns ?? 80) - 1 : 0;
      process.stdout.write(renderReport(report, checks, style, width));
      process.stdout.write(`\nVerdict: ${v}\n`);
    }
    return v === "not-ready" ? EXIT.failed : EXIT.ok;
  });
}
