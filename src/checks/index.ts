// checks: verdicts over a host report. Pure: a report in, a list of checks out, no I/O. Each check
// has a stable id that the TUI, the CLI, answer-file `requires` rules and webhooks all refer to.
import type { HostReport } from "../detect/types.js";
import { iommuChecks } from "./iommu.js";
import {
  cgroupCheck,
  firmwareCheck,
  memoryChecks,
  networkChecks,
  passthroughCheck,
  storageCheck,
} from "./resources.js";
import type { Check } from "./types.js";
import {
  cpuVirtCheck,
  deviceNodeChecks,
  devKvmCheck,
  kvmFunctionalCheck,
  kvmModuleCheck,
  nestedCheck,
  slatCheck,
} from "./virtualization.js";

export type { Check, CheckLevel, CheckState } from "./types.js";

type Source = { ids: readonly string[]; run: (r: HostReport) => Check | Check[] | null };

/** Every check, in report order, with the ids each source can produce. */
const SOURCES: readonly Source[] = [
  { ids: ["cpu.virt"], run: cpuVirtCheck },
  { ids: ["cpu.slat"], run: slatCheck },
  { ids: ["kvm.module"], run: kvmModuleCheck },
  { ids: ["kvm.dev", "kvm.access"], run: devKvmCheck },
  { ids: ["kvm.functional"], run: kvmFunctionalCheck },
  { ids: ["kvm.nested"], run: nestedCheck },
  { ids: ["kvm.vhost-net", "kvm.tun"], run: deviceNodeChecks },
  { ids: ["iommu.enabled", "iommu.interrupt-remapping", "iommu.isolation"], run: iommuChecks },
  { ids: ["memory.total", "memory.hugepages", "cpu.offline"], run: memoryChecks },
  { ids: ["net.nics", "net.management", "sriov.capable"], run: networkChecks },
  { ids: ["passthrough.candidates"], run: passthroughCheck },
  { ids: ["storage.disks"], run: storageCheck },
  { ids: ["firmware.mode"], run: firmwareCheck },
  { ids: ["host.cgroups"], run: cgroupCheck },
];

/** Every check id a report can hold. */
export const CHECK_IDS: readonly string[] = SOURCES.flatMap((s) => s.ids);

/**
 * The checks over a report; with `ids`, only the sources that can produce them run (an answer's
 * requires.checks names a few, and the rule set runs on every validate and plan).
 */
export function runChecks(report: HostReport, ids?: ReadonlySet<string>): Check[] {
  const out: Check[] = [];
  for (const s of SOURCES) {
    if (ids && !s.ids.some((id) => ids.has(id))) continue;
    const c = s.run(report);
    if (Array.isArray(c)) out.push(...c);
    else if (c) out.push(c);
  }
  return out;
}

export function verdict(checks: Check[]): "ready" | "ready-with-warnings" | "not-ready" {
  if (checks.some((c) => c.level === "fail")) return "not-ready";
  return checks.some((c) => c.level === "warn") ? "ready-with-warnings" : "ready";
}
