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
import type { MigrationTargetReport } from "../vm/migrate-check.js";
import type { JobInfo } from "../vm/migrate-progress.js";
import { type Virsh, virshAt } from "../vm/virsh-exec.js";

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

/**
 * The fields of the target's host report the check reads, each checked for its type here. Not the
 * whole schema (src/detect/types.ts): zod's import alone takes 0.1-0.2 s of node's start, more than
 * the 10% a small migration may cost; the rest of the report plays no part in a migration.
 */
function migrationReport(raw: unknown, file: string): MigrationTargetReport {
  const bad = (key: string, want: string) =>
    new InputError(`--target-report ${file}: not a host report (${key}: expected ${want})`);
  const obj = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const strOrNull = (v: unknown) => v === null || typeof v === "string";
  if (!obj(raw)) throw bad("report", "an object");
  const { cpu, pci, nics, memory, vswitch } = raw;
  if (!obj(cpu) || !strOrNull(cpu.vendor) || !strOrNull(cpu.model)) throw bad("cpu", "vendor and model");
  if (!Array.isArray(cpu.flags) || !cpu.flags.every((f) => typeof f === "string"))
    throw bad("cpu.flags", "an array of strings");
  if (!Array.isArray(pci) || !pci.every((p) => obj(p) && typeof p.address === "string"))
    throw bad("pci", "an array of devices with an address");
  if (!Array.isArray(nics) || !nics.every((n) => obj(n) && strOrNull(n.name) && strOrNull(n.kind)))
    throw bad("nics", "an array of interfaces with a name and kind");
  if (!obj(memory) || !(memory.hugepageSizeKiB === null || typeof memory.hugepageSizeKiB === "number"))
    throw bad("memory.hugepageSizeKiB", "a number or null");
  const pages = memory.hugepages;
  if (!obj(pages) || !Object.values(pages).every((c) => obj(c) && typeof c.free === "number"))
    throw bad("memory.hugepages", "counts by page size");
  if (
    vswitch !== undefined &&
    !(obj(vswitch) && [true, false, null].includes(vswitch.bridgeVlanFiltering as boolean))
  )
    throw bad("vswitch.bridgeVlanFiltering", "true, false or null");
  return raw as unknown as MigrationTargetReport;
}

async function readReport(file: string): Promise<MigrationTargetReport> {
  const text = await readFile(file, "utf8").catch((e: Error) => {
    throw new InputError(`--target-report ${file}: ${e.message}`);
  });
  if (text.length > MAX_REPORT_BYTES) throw new InputError(`--target-report ${file}: larger than 16 MiB`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`--target-report ${file}: not JSON (${(e as Error).message})`);
  }
  // `kvmstrap detect --json` wraps the report with its checks; a stored bare report works too.
  return migrationReport((raw as { report?: unknown })?.report ?? raw, file);
}

const MARK = "@@kvmstrap-next@@";
/** One argument in virsh's own command syntax (single quotes; a quote closed, escaped, reopened). */
const quoted = (arg: string) => {
  if (/[\n\r]/.test(arg)) throw new InputError(`a name with a line break: ${JSON.stringify(arg)}`);
  return `'${arg.replaceAll("'", "'\\''")}'`;
};
async function batch(lv: Virsh, commands: string[]): Promise<string[]> {
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

/** Gathers the VM's and the target's facts and runs the one check function over them. */
export async function checkMigration(
  r: MigrateRequest,
  report?: MigrationTargetReport,
): Promise<MigrationCheck> {
  const targetUri = r.targetUri ?? `qemu+tls://${r.to}/system`;
  const source = virshAt(r.sourceUri);
  const target = virshAt(targetUri, 30_000);
  // Both hosts' virsh runs start at once (the target's before the VM's type is known: it answers
  // for both of this machine's virt types); node reads the report and loads the check's XML
  // parser while they run. One virsh run per host: each connection (a TLS handshake to the target)
  // costs, and the answers are split at an echoed marker.
  // dumpxml last: its failure (no such VM) is virsh's exit status.
  const fromSource = batch(source, ["hostname", "capabilities", `dumpxml ${quoted(r.vm)}`]);
  const fromTarget = batch(target, [
    "hostname",
    "capabilities",
    "domcapabilities --virttype kvm",
    "domcapabilities --virttype qemu",
    "pool-list --name",
    // Last: virsh's status is its last command's, and a host without kvm fails the one above.
    "net-list --name",
  ]);
  const [
    targetReport,
    { hostCpu, migrationRefusals, usableCpuModels },
    [sourceHost = "", sourceCaps = "", domainXml = ""],
    [targetHost = "", targetCaps = "", kvmCaps = "", qemuCaps = "", pools = "", nets = ""],
  ] = await Promise.all([
    report ?? readReport(r.targetReport),
    import("../vm/migrate-check.js"),
    fromSource,
    fromTarget,
  ]);
  const virtType = /<domain[^>]*type=['"]([a-z]+)['"]/.exec(domainXml)?.[1] ?? "kvm";
  const domcaps =
    virtType === "kvm"
      ? kvmCaps
      : virtType === "qemu"
        ? qemuCaps
        : await target.run(["domcapabilities", "--virttype", virtType]).catch(() => "");
  const facts = {
    vm: r.vm,
    domainXml,
    sourceHostname: sourceHost.trim(),
    sourceHostCpu: hostCpu(sourceCaps),
    targetReport,
    target: {
      hostname: targetHost.trim(),
      hostCpu: hostCpu(targetCaps),
      usableCpuModels: usableCpuModels(domcaps),
      activeNetworks: nets
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean),
      activePools: pools
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
  const source = virshAt(r.sourceUri);
  const target = virshAt(targetUri, 30_000);
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
  return virshAt(sourceUri)
    .run(["domstate", vm])
    .then(
      (s) => s.trim(),
      () => "unknown",
    );
}
