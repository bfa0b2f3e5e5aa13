// The use case behind `kvmstrap vm migrate NAME --to HOST`: gather what the VM needs and what the
// target offers, refuse with every reason before anything starts, else migrate live over TLS.
//
// Where the target's facts come from: its host report, a `kvmstrap detect --json` run on the target
// and stored as a file (the fleet keeps one per host; --target-report), for bridges, VLAN filtering,
// PCI devices and hugepages; and its libvirtd, over the same TLS connection the migration uses, for
// its hostname, host CPU, usable CPU models and active networks. Disks whose files are not on shared
// storage are copied (copyStorage: every file-backed disk, listed to libvirt by --migrate-disks).
import { readFile } from "node:fs/promises";
import { InputError } from "../core/errors.js";
import { migrate } from "../vm/migrate.js";
import type { JobInfo } from "../vm/migrate-progress.js";
import { VirshLibvirt } from "../vm/virsh-libvirt.js";

export interface MigrateRequest {
  vm: string;
  /** The target's host name or address (its libvirtd's TLS listener). */
  to: string;
  sourceUri: string;
  /** Default qemu+tls://TO/system. */
  targetUri?: string;
  /** The target's `kvmstrap detect --json` (or its bare report). */
  targetReport: string;
  copyStorage: boolean;
  maxDowntimeMs?: number;
  timeoutS?: number;
}

export type MigrateOutcome =
  | { vm: string; outcome: "refused"; target: string; reasons: string[] }
  | {
      vm: string;
      outcome: "migrated";
      target: string;
      copiedDisks: string[];
      wallMs: number;
      downtimeMs: number | null;
      processedBytes: number | null;
    };

/** Report files are at most a few hundred KiB; anything far bigger is not one. */
const MAX_REPORT_BYTES = 16 * 2 ** 20;

async function readReport(file: string) {
  const text = await readFile(file, "utf8").catch((e: Error) => {
    throw new InputError(`--target-report ${file}: ${e.message}`);
  });
  if (text.length > MAX_REPORT_BYTES) throw new InputError(`--target-report ${file}: larger than 16 MiB`);
  // zod and the report's schema load here, while the VM's and the hosts' virsh queries run.
  const { hostReport } = await import("../detect/types.js");
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--target-report ${file}: not JSON (${(e as Error).message})`);
  }
  // `kvmstrap detect --json` wraps the report with its checks; a stored bare report works too.
  const inner = (raw as { report?: unknown })?.report ?? raw;
  const parsed = hostReport.safeParse(inner);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(
      `--target-report ${file}: not a host report (${issue?.path.join(".")}: ${issue?.message})`,
    );
  }
  return parsed.data;
}

const MARK = "@@kvmstrap-next@@";
async function batch(lv: VirshLibvirt, commands: string[]): Promise<string[]> {
  const out = await lv.run([commands.join(` ; echo ${MARK} ; `)]);
  return out.split(`${MARK}\n`);
}

/** What the check before a migration found: every reason the target cannot take the VM (none: go). */
export interface MigrationCheck {
  vm: string;
  /** The target's hostname as its libvirtd says. */
  target: string;
  sourceHostname: string;
  domainXml: string;
  reasons: string[];
}

/** Reads the target's report file once (a drain checks many VMs against it). */
export const readTargetReport = readReport;
type Report = Awaited<ReturnType<typeof readReport>>;

/** Gathers the VM's and the target's facts and runs the one check function over them. */
export async function checkMigration(r: MigrateRequest, report?: Report): Promise<MigrationCheck> {
  const targetUri = r.targetUri ?? `qemu+tls://${r.to}/system`;
  const source = new VirshLibvirt(r.sourceUri);
  const target = new VirshLibvirt(targetUri, { timeoutMs: 30_000 });
  // The virsh queries start first; node reads the report and loads the check's modules (zod, the
  // XML parser: a fifth of a second) while they run. One virsh session per host: each TLS
  // connection costs a handshake, and the answers are split at an echoed marker.
  const xml = source.domainXml(r.vm);
  const fromSource = batch(source, ["hostname", "capabilities"]);
  const fromTarget = xml.then((domainXml) =>
    batch(target, [
      "hostname",
      "capabilities",
      `domcapabilities --virttype ${/<domain[^>]*type=['"]([a-z]+)['"]/.exec(domainXml)?.[1] ?? "kvm"}`,
      "net-list --name",
    ]),
  );
  const [
    targetReport,
    { hostCpuModel, migrationRefusals, usableCpuModels },
    domainXml,
    [sourceHost = "", sourceCaps = ""],
    [targetHost = "", targetCaps = "", domcaps = "", nets = ""],
  ] = await Promise.all([
    report ?? readReport(r.targetReport),
    import("../vm/migrate-check.js"),
    xml,
    fromSource,
    fromTarget,
  ]);
  const facts = {
    vm: r.vm,
    domainXml,
    sourceHostname: sourceHost.trim(),
    sourceHostCpuModel: hostCpuModel(sourceCaps),
    targetReport,
    target: {
      hostname: targetHost.trim(),
      hostCpuModel: hostCpuModel(targetCaps),
      usableCpuModels: usableCpuModels(domcaps),
      activeNetworks: nets
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean),
    },
  };
  return {
    vm: r.vm,
    target: facts.target.hostname,
    sourceHostname: facts.sourceHostname,
    domainXml,
    reasons: migrationRefusals(facts),
  };
}

/** Moves a VM whose check found no reason against it. */
export async function runMigration(
  r: MigrateRequest,
  checked: MigrationCheck,
  onProgress?: (j: JobInfo) => void,
): Promise<MigrateOutcome> {
  const targetUri = r.targetUri ?? `qemu+tls://${r.to}/system`;
  const source = new VirshLibvirt(r.sourceUri);
  const target = new VirshLibvirt(targetUri, { timeoutMs: 30_000 });
  const { localDisks } = await import("../vm/migrate-check.js");
  const copiedDisks = r.copyStorage ? localDisks(checked.domainXml).map((d) => d.target) : [];
  const result = await migrate(source, target, {
    vm: r.vm,
    targetUri,
    copyDisks: copiedDisks,
    ...(r.maxDowntimeMs !== undefined ? { maxDowntimeMs: r.maxDowntimeMs } : {}),
    ...(r.timeoutS !== undefined ? { timeoutS: r.timeoutS } : {}),
    ...(onProgress ? { onProgress } : {}),
  });
  return {
    vm: r.vm,
    outcome: "migrated",
    target: checked.target,
    copiedDisks,
    wallMs: result.wallMs,
    downtimeMs: result.completed?.downtimeMs ?? null,
    processedBytes: result.completed?.processedBytes ?? null,
  };
}

export async function vmMigrate(
  r: MigrateRequest,
  onProgress?: (j: JobInfo) => void,
): Promise<MigrateOutcome> {
  const checked = await checkMigration(r);
  if (checked.reasons.length)
    return { vm: r.vm, outcome: "refused", target: checked.target, reasons: checked.reasons };
  return runMigration(r, checked, onProgress);
}

/** The VM's state on the source after a failed migration (what the CLI tells the operator). */
export async function sourceState(vm: string, sourceUri: string): Promise<string> {
  return new VirshLibvirt(sourceUri).domainState(vm).catch(() => "unknown");
}
