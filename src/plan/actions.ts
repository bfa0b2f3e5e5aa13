// The plan's vocabulary: ordered actions, each with what it needs afterwards (nothing, a module
// reload, a reboot) and enough of the prior state to undo it. Actions are plain data so the same
// plan can be printed as a diff, serialised with --json, journaled, and replayed after a reboot.
export type Effect = "none" | "module-reload" | "network" | "reboot";

interface ActionBase {
  /** Stable within a plan: "<section>.<what>", e.g. "kvm.modprobe-conf" or "vfio.bind.0000:01:00.0". */
  id: string;
  /** One line for people: what and why. */
  summary: string;
  effect: Effect;
  /** What to do when the action fails (apply shows it with the failure). Optional. */
  remediation?: string;
}

/** Create or replace a file. The inverse restores `previous` (null: the file did not exist). */
export interface WriteFileAction extends ActionBase {
  kind: "write-file";
  path: string;
  content: string;
  mode: number;
  previous: string | null;
}

/** Remove a file that kvmstrap manages. The inverse writes `previous` back. */
export interface RemoveFileAction extends ActionBase {
  kind: "remove-file";
  path: string;
  previous: string | null;
}

/** Write a value to a sysfs attribute (live state). The inverse writes `previous` back, when known. */
export interface WriteSysfsAction extends ActionBase {
  kind: "write-sysfs";
  path: string;
  value: string;
  previous: string | null;
}

/** Run a program. `undo` is the command that reverses it (null: nothing to reverse, e.g. update-grub
 *  which the file inverses already cover by re-running). `check` skips the run when it exits 0. */
export interface RunCommandAction extends ActionBase {
  kind: "run-command";
  argv: string[];
  undo: string[] | null;
  check: string[] | null;
}

export type Action = WriteFileAction | RemoveFileAction | WriteSysfsAction | RunCommandAction;

export interface Plan {
  schema: "kvmstrap.plan/1";
  /** sha256 of the answer file's canonical JSON, so a resumed apply knows it runs the same plan. */
  answerDigest: string;
  actions: Action[];
  /** Reasons the plan refused something, each with the answer path it concerns. */
  refusals: { path: string; reason: string }[];
  needsReboot: boolean;
  /** What must hold after the reboot: kernel parameters in /proc/cmdline, devices on vfio-pci. */
  expect?: { cmdlineParams: string[]; vfio: string[]; iommuGroups?: boolean };
}
