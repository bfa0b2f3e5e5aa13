// `kvmstrap detect`: the host report and readiness checks, for people or (--json) for scripts.
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { runChecks, verdict } from "../checks/index.js";
import { detectHost } from "../detect/index.js";
import { ExecaRunner } from "../host/commands.js";
import { RootedHostFs } from "../host/fs.js";
import { parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";
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

export async function detectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    json: { type: "boolean" },
    root: { type: "string" },
    snapshot: { type: "string" },
    probe: { type: "string" },
    "probe-kernel": { type: "string" },
    "no-color": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    process.stdout.write(DETECT_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`detect takes no arguments (got "${positionals[0]}")`);
  const probe = values.probe ?? "auto";
  if (probe !== "auto" && probe !== "always" && probe !== "never") {
    throw new UsageError(`--probe must be auto, always or never (got "${probe}")`);
  }
  if (values.root && values.snapshot) throw new UsageError("--root and --snapshot cannot be combined");

  let root = values.root ?? "/";
  let cleanup: (() => Promise<void>) | undefined;
  if (values.snapshot) {
    const { openSnapshot } = await import("./snapshot-command.js");
    ({ root, cleanup } = await openSnapshot(values.snapshot));
  }
  try {
    await assertMachineRoot(root);
    const report = await detectHost({
      fs: new RootedHostFs(root),
      runner: new ExecaRunner(),
      probe: { mode: probe, kernel: values["probe-kernel"] ?? null },
    });
    const checks = runChecks(report);
    const v = verdict(checks);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ report, checks, verdict: v }, null, 2)}\n`);
    } else {
      const style = makeStyle(process.stdout, process.env, values["no-color"] ? false : undefined);
      process.stdout.write(renderReport(report, checks, style));
      process.stdout.write(`\nVerdict: ${v}\n`);
    }
    return v === "not-ready" ? EXIT.failed : EXIT.ok;
  } finally {
    await cleanup?.();
  }
}

/** A root must be a readable directory holding proc/ or sys/; anything else is an input error. */
export async function assertMachineRoot(root: string): Promise<void> {
  try {
    const st = await stat(root);
    if (!st.isDirectory()) throw new InputError(`--root ${root}: not a directory`);
    await access(root, constants.R_OK | constants.X_OK);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(`--root ${root}: cannot read (${code === "ENOENT" ? "no such directory" : code})`);
  }
  const fs = new RootedHostFs(root);
  if (!(await fs.exists("/proc")) && !(await fs.exists("/sys"))) {
    throw new InputError(
      `--root ${root}: holds neither proc/ nor sys/, so it is not a machine root or snapshot`,
    );
  }
}
