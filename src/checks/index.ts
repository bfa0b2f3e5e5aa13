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

export function runChecks(report: HostReport): Check[] {
  return [
    cpuVirtCheck(report),
    slatCheck(report),
    kvmModuleCheck(report),
    ...devKvmCheck(report),
    kvmFunctionalCheck(report),
    nestedCheck(report),
    ...deviceNodeChecks(report),
    ...iommuChecks(report),
    ...memoryChecks(report),
    ...networkChecks(report),
    passthroughCheck(report),
    storageCheck(report),
    firmwareCheck(report),
    cgroupCheck(report),
  ].filter((c): c is Check => c !== null);
}

export function verdict(checks: Check[]): "ready" | "ready-with-warnings" | "not-ready" {
  if (checks.some((c) => c.level === "fail")) return "not-ready";
  return checks.some((c) => c.level === "warn") ? "ready-with-warnings" : "ready";
}
