// The use cases behind `kvmstrap vm snapshot|backup|restore`: a VM's disks kept safe on a running
// libvirtd. Each takes the connection URI and wires the libvirt port here, so the CLI (and later the
// TUI or serve) run the same code against the same adapters.
import { ExecaRunner } from "../host/commands.js";
import { type BackupOptions, type BackupResult, backupVm } from "../vm/backup.js";
import { type RestoreOptions, type RestoreResult, restoreVm } from "../vm/restore.js";
import {
  type CreateResult,
  createSnapshot,
  deleteSnapshot,
  listSnapshots,
  type RevertResult,
  revertSnapshot,
  type SnapshotInfo,
} from "../vm/snapshot.js";
import { libvirtAt } from "./adapters.js";

export type { SnapshotAddresses } from "../vm/snapshot.js";

export type Connection = { uri: string };
const deps = (c: Connection) => ({ libvirt: libvirtAt(c.uri), runner: new ExecaRunner() });

export type SnapshotRequest =
  | { verb: "create"; vm: string; snapshot: string }
  | { verb: "list"; vm: string }
  | { verb: "revert"; vm: string; snapshot: string }
  | { verb: "delete"; vm: string; snapshot: string };
export type SnapshotOutcome =
  | { verb: "create"; result: CreateResult }
  | { verb: "list"; vm: string; snapshots: SnapshotInfo[] }
  | { verb: "revert"; result: RevertResult }
  | { verb: "delete"; vm: string; deleted: SnapshotInfo };

export async function vmSnapshot(req: SnapshotRequest, c: Connection): Promise<SnapshotOutcome> {
  const d = deps(c);
  switch (req.verb) {
    case "create":
      return { verb: "create", result: await createSnapshot(req.vm, req.snapshot, d) };
    case "list":
      return { verb: "list", vm: req.vm, snapshots: await listSnapshots(req.vm, d) };
    case "revert":
      return { verb: "revert", result: await revertSnapshot(req.vm, req.snapshot, d) };
    case "delete":
      return { verb: "delete", vm: req.vm, deleted: await deleteSnapshot(req.vm, req.snapshot, d) };
  }
}

export function vmBackup(
  vm: string,
  dir: string,
  options: BackupOptions,
  c: Connection,
): Promise<BackupResult> {
  return backupVm(vm, dir, deps(c), options);
}

export function vmRestore(dir: string, options: RestoreOptions, c: Connection): Promise<RestoreResult> {
  return restoreVm(dir, deps(c), options);
}
