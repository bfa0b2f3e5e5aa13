// Inspect a machine: the host report, the readiness checks and the verdict, as `kvmstrap detect`,
// the TUI's Welcome and the server's discovery show them.
import { type Check, runChecks, verdict } from "../checks/index.js";
import { detectHost } from "../detect/index.js";
import type { HostReport } from "../detect/types.js";
import { ExecaRunner } from "../host/commands.js";
import type { HostFs } from "../host/fs.js";
import type { Machine } from "./machine.js";

export type ProbeMode = "auto" | "always" | "never";

export interface Inspection {
  report: HostReport;
  checks: Check[];
  verdict: ReturnType<typeof verdict>;
}

/** The host report of a machine. The functional KVM probe runs only on this host (never on a capture). */
export function detectMachine(
  machine: Machine,
  probe: { mode: ProbeMode; kernel?: string | null } = { mode: "auto" },
): Promise<HostReport> {
  return detectHost({
    fs: machine.fs,
    runner: new ExecaRunner(),
    probe: machine.captured ? { mode: "never" } : { mode: probe.mode, kernel: probe.kernel ?? null },
  });
}

/** Detection through a given filesystem port, probe off: what `kvmstrap snapshot` records. */
export const detectThrough = (fs: HostFs): Promise<HostReport> =>
  detectHost({ fs, runner: new ExecaRunner(), probe: { mode: "never" } });

export async function inspect(
  machine: Machine,
  probe?: { mode: ProbeMode; kernel?: string | null },
): Promise<Inspection> {
  const report = await detectMachine(machine, probe);
  const checks = runChecks(report);
  return { report, checks, verdict: verdict(checks) };
}
