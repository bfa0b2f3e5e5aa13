// The use case behind `kvmstrap host drain HOST --to TARGET`: every running VM of this host goes
// to TARGET through the same check and migration as `vm migrate` (src/app/vm-migrate.ts). All of
// them are checked before any moves, so the operator learns up front which VMs stay (a passthrough
// device, a bridge the target lacks...); then the movable ones move one at a time, each with its
// progress. The first migration libvirt fails stops the drain: the VMs not yet moved stay running
// where they are rather than pile onto a target that just failed one.
import { InputError } from "../core/errors.js";
import { LibvirtError } from "../vm/libvirt.js";
import type { JobInfo } from "../vm/migrate-progress.js";
import { virshAt } from "../vm/virsh-exec.js";
import {
  checkMigration,
  type MigrateOutcome,
  type MigrateRequest,
  type MigrationCheck,
  readTargetReport,
  runMigration,
  sourceState,
} from "./vm-migrate.js";

export interface DrainRequest extends Omit<MigrateRequest, "vm"> {
  /** The host being drained, as the operator names it: must be the one --connect reaches. */
  host: string;
}

export type Migrated = Extract<MigrateOutcome, { outcome: "migrated" }>;

export type DrainEvent =
  | { event: "plan"; movable: string[]; notMovable: { vm: string; reasons: string[] }[] }
  | { event: "start"; vm: string; index: number; of: number }
  | ({ event: "progress" } & JobInfo & { vm: string })
  | ({ event: "migrated" } & Migrated);

export interface DrainResult {
  host: string;
  target: string;
  moved: Migrated[];
  notMovable: { vm: string; reasons: string[] }[];
  /** The migration libvirt failed, if one did, and that VM's state on this host afterwards. */
  failed: { vm: string; error: string; code: string; sourceState: string } | null;
  /** Movable VMs left on this host because the drain stopped at a failure. */
  notAttempted: string[];
}

/** "kvm1" names the host whose libvirtd says "kvm1.example.net" too. */
const sameHost = (given: string, actual: string) =>
  given === actual || actual.split(".")[0] === given || given.split(".")[0] === actual;

export async function hostDrain(r: DrainRequest, onEvent?: (e: DrainEvent) => void): Promise<DrainResult> {
  const report = await readTargetReport(r.targetReport);
  const source = virshAt(r.sourceUri);
  const [hostname, running] = await Promise.all([
    source.run(["hostname"]).then((s) => s.trim()),
    source.run(["list", "--name", "--state-running"]),
  ]);
  // Draining is aimed at one host; a --connect that reaches another is a mistake to stop on.
  if (!sameHost(r.host, hostname))
    throw new InputError(`host drain ${r.host}: --connect ${r.sourceUri} reaches host "${hostname}"`);
  const vms = running
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const checks: MigrationCheck[] = [];
  for (const vm of vms) checks.push(await checkMigration({ ...r, vm }, report));
  if (checks.some((c) => sameHost(c.target, hostname)))
    throw new InputError(`host drain ${r.host}: --to ${r.to} is this same host`);
  const movable = checks.filter((c) => !c.reasons.length);
  const notMovable = checks.filter((c) => c.reasons.length).map((c) => ({ vm: c.vm, reasons: c.reasons }));
  onEvent?.({ event: "plan", movable: movable.map((c) => c.vm), notMovable });

  const result: DrainResult = {
    host: hostname,
    target: checks[0]?.target ?? r.to,
    moved: [],
    notMovable,
    failed: null,
    notAttempted: [],
  };
  for (const [i, c] of movable.entries()) {
    onEvent?.({ event: "start", vm: c.vm, index: i + 1, of: movable.length });
    try {
      const out = await runMigration({ ...r, vm: c.vm }, c, (j) =>
        onEvent?.({ event: "progress", vm: c.vm, ...j }),
      );
      if (out.outcome !== "migrated") throw new Error(`unexpected outcome ${out.outcome}`);
      result.moved.push(out);
      onEvent?.({ event: "migrated", ...out });
    } catch (e) {
      if (!(e instanceof LibvirtError)) throw e;
      const state = await sourceState(c.vm, r.sourceUri);
      result.failed = { vm: c.vm, error: e.message, code: e.code, sourceState: state };
      result.notAttempted = movable.slice(i + 1).map((m) => m.vm);
      break;
    }
  }
  return result;
}
