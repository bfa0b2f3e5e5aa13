// `kvmstrap vm migrate NAME --to HOST`: a live migration through src/app/vm-migrate.ts. A target
// that lacks what the VM needs is refused before anything starts (exit 2, every reason listed); a
// migration libvirt fails exits 1 with libvirt's error and the VM's state on the source.
import { sourceState, vmMigrate } from "../app/vm-migrate.js";
import { LibvirtError } from "../vm/libvirt.js";
import { type JobInfo, percentDone, progressLine } from "../vm/migrate-progress.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const VM_MIGRATE_HELP = `Usage: kvmstrap vm migrate NAME --to HOST --target-report FILE [options]

Moves a running VM to another kvmstrap host without stopping it: libvirt's
peer-to-peer live migration over TLS (qemu+tls://HOST/system, certificates from
kvmstrap pki); qemu's migration and disk streams use TLS too. The VM is defined
on the target and removed from this host. Before anything starts, the target
is checked and refused with every reason: the VM's CPU model (the target's
domain capabilities; host-passthrough: the same vendor, model and features),
a passthrough device (PCI, USB, mediated, an SR-IOV NIC), the bridge, Open
vSwitch bridge, macvtap device or VLAN its NICs name, its libvirt networks,
free hugepages of its page size. The target's facts: its host report
(--target-report) and its libvirtd over the TLS connection.

Options:
  --to HOST             Target host name or address (libvirtd on TLS)
  --target-report FILE  The target's "kvmstrap detect --json" output
  --to-connect URI      Target libvirt URI (default qemu+tls://HOST/system)
  --connect URI         This host's libvirt URI (default qemu:///system)
  --copy-storage        Copy the VM's file disks (not on shared storage)
                        to the same paths on the target
  --max-downtime MS     Longest pause of the guest at switch-over
  --timeout SECONDS     Pause the guest after SECONDS so it completes
  --json                Progress as JSON lines on stdout, then the result
  -h, --help            Print this help

Progress: a line a second on stderr (percent, MiB moved, seconds).
Exit codes: 0 migrated; 1 the migration failed (libvirt's error; the VM stays
on this host); 2 usage error, or refused (nothing was started).
`;

export const VM_MIGRATE_OPTIONS = {
  to: { type: "string" },
  "target-report": { type: "string" },
  "to-connect": { type: "string" },
  connect: { type: "string" },
  "copy-storage": { type: "boolean" },
  "max-downtime": { type: "string" },
  timeout: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const positive = (v: string | undefined, flag: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${flag} must be a whole number of at least 1 (got "${v}")`);
  return n;
};

export async function vmMigrateCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_MIGRATE_OPTIONS);
  if (values.help) {
    process.stdout.write(VM_MIGRATE_HELP);
    return EXIT.ok;
  }
  const [vm, extra] = positionals;
  if (!vm) throw new UsageError("vm migrate needs a VM NAME");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (!values.to) throw new UsageError("vm migrate needs --to HOST");
  if (!values["target-report"])
    throw new UsageError('vm migrate needs --target-report FILE (the target\'s "kvmstrap detect --json")');
  const json = Boolean(values.json);
  const sourceUri = values.connect ?? "qemu:///system";
  const emit = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
  const onProgress = (j: JobInfo) =>
    json
      ? emit({ event: "progress", vm, percent: percentDone(j), ...j })
      : process.stderr.write(`${progressLine(vm, j)}\n`);
  try {
    const r = await vmMigrate(
      {
        vm,
        to: values.to,
        sourceUri,
        targetReport: values["target-report"],
        copyStorage: Boolean(values["copy-storage"]),
        ...(values["to-connect"] ? { targetUri: values["to-connect"] } : {}),
        ...(values["max-downtime"]
          ? { maxDowntimeMs: positive(values["max-downtime"], "--max-downtime") }
          : {}),
        ...(values.timeout ? { timeoutS: positive(values.timeout, "--timeout") } : {}),
      },
      onProgress,
    );
    if (json) emit({ event: "result", ...r });
    if (r.outcome === "refused") {
      if (!json) {
        process.stderr.write(`kvmstrap: ${vm} cannot move to ${r.target}; nothing was started:\n`);
        for (const reason of r.reasons) process.stderr.write(`  - ${reason}\n`);
      }
      return EXIT.usage;
    }
    if (!json) {
      const down = r.downtimeMs === null ? "not reported" : `${r.downtimeMs} ms`;
      const copied = r.copiedDisks.length ? `, disks copied: ${r.copiedDisks.join(", ")}` : "";
      process.stdout.write(
        `${vm} now runs on ${r.target}: ${(r.wallMs / 1000).toFixed(2)} s, downtime ${down}${copied}\n`,
      );
    }
    return EXIT.ok;
  } catch (e) {
    if (!(e instanceof LibvirtError)) throw e;
    const state = await sourceState(vm, sourceUri);
    if (json) emit({ event: "failed", vm, error: e.message, code: e.code, sourceState: state });
    else
      process.stderr.write(
        `kvmstrap: migration of ${vm} failed: ${e.message}\n  ${vm} on this host: ${state}\n`,
      );
    return EXIT.failed;
  }
}
