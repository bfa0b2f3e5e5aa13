// A check turns facts into a verdict an operator can act on: a stable id, a level, one line of
// reason, a concrete remediation and whether the fix needs a reboot. `state` says which of the
// cases virt-host-validate cannot tell apart this is.
export type CheckLevel = "pass" | "warn" | "fail" | "note";

export type CheckState =
  | "ok"
  | "unsupported"
  | "disabled-in-firmware"
  | "disabled-in-kernel"
  | "present-but-unusable"
  | "unknown"
  | "info";

export interface Check {
  id: string;
  title: string;
  level: CheckLevel;
  state: CheckState;
  reason: string;
  remediation: string | null;
  reboot: boolean;
  /** The report paths (files) the verdict rests on. */
  facts: string[];
}

export const check = (c: Omit<Check, "facts" | "remediation" | "reboot"> & Partial<Check>): Check => ({
  remediation: null,
  reboot: false,
  facts: [],
  ...c,
});
