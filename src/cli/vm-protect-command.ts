// `kvmstrap vm snapshot|backup|restore`: a VM's disks kept safe, through src/app/vm-protect.ts.
// No such VM, snapshot or chain, a broken chain or a checksum mismatch exit 2 naming it; libvirt's
// own failures exit 1 with its reason.

import { type SnapshotAddresses, vmBackup, vmRestore, vmSnapshot } from "../app/vm-protect.js";
import { DEFAULT_VM_DIR } from "../vm/deploy.js";
import { LibvirtError } from "../vm/libvirt.js";
import { libvirtRemedy } from "../vm/libvirt-error.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

const DEFAULT_URI = "qemu:///system";

export const VM_SNAPSHOT_HELP = `Usage: kvmstrap vm snapshot <create|list|revert|delete> NAME [SNAP] [options]

External, disk-only snapshots: a new qcow2 overlay on each writable file disk.

  create NAME SNAP  Take snapshot SNAP (frozen by the guest agent, if it runs),
                    recording the guest's addresses (from the agent, else the
                    DHCP leases, else the host's ARP table)
  list NAME         The VM's snapshots, oldest first, with their overlays and
                    the addresses the guest had
  revert NAME SNAP  Back to SNAP: the VM is powered off, SNAP's overlay emptied
                    and the VM started again if it was running (SNAP must be
                    the newest snapshot)
  delete NAME SNAP  Merge SNAP's overlay back (blockcommit) and forget it

Options:
  --connect URI     libvirt URI (default ${DEFAULT_URI})
  --json            Print the result as JSON
  -h, --help        Print this help

Exit codes: 0 done, 1 libvirt failed, 2 no such VM or snapshot, or a bad name.
`;
export const VM_SNAPSHOT_OPTIONS = {
  connect: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export const VM_BACKUP_HELP = `Usage: kvmstrap vm backup NAME --to DIR [options]

Backs up a running VM's disks through libvirt's backup-begin, with checkpoints.
A full backup starts a new chain in DIR (DIR/chain-<time>/); --incremental
writes only what changed since the chain's last backup. The chain's
manifest.json lists each backup's files with their sizes and sha256; a backup
is in the chain only once it is complete.

Options:
  --to DIR          The backup directory (one per VM)
  --incremental     Only the changes since the newest chain's last backup
  --full-every N    With --incremental: a new chain (a full backup) when the
                    newest has N backups, or there is none
  --keep N          Then keep the newest N chains (older ones and their
                    checkpoints are removed)
  --connect URI     libvirt URI (default ${DEFAULT_URI})
  --json            Print the result as JSON
  -h, --help        Print this help

Exit codes: 0 done, 1 libvirt or the backup job failed, 2 no such VM, VM not
running, or no chain to add to.
`;
export const VM_BACKUP_OPTIONS = {
  to: { type: "string" },
  incremental: { type: "boolean" },
  "full-every": { type: "string" },
  keep: { type: "string" },
  connect: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export const VM_RESTORE_HELP = `Usage: kvmstrap vm restore DIR (--name NEW | --replace) [options]

Rebuilds a VM from a backup chain (DIR: a chain, or a backup directory and its
newest chain). The chain's order and every file's sha256 are checked first;
each disk is then flattened from the full backup and the incrementals into one
qcow2 file in --dir, and the VM defined from the chain's domain definition.

Options:
  --name NEW        A new VM (no UUID, new MAC addresses); the original stays
  --replace         Over the VM the chain came from (stopped first; its old
                    disk files are kept)
  --upto N          Up to backup N of the chain (0: the full backup; default:
                    the newest)
  --dir DIR         Where the restored disks go (default ${DEFAULT_VM_DIR})
  --start           Start the restored VM
  --connect URI     libvirt URI (default ${DEFAULT_URI})
  --json            Print the result as JSON
  -h, --help        Print this help

Exit codes: 0 done, 1 libvirt or qemu-img failed, 2 a broken chain, a checksum
mismatch (the file named), or a name taken.
`;
export const VM_RESTORE_OPTIONS = {
  name: { type: "string" },
  replace: { type: "boolean" },
  upto: { type: "string" },
  dir: { type: "string" },
  start: { type: "boolean" },
  connect: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const count = (v: string | undefined, flag: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`${flag} must be a whole number of at least ${min} (got "${v}")`);
  return n;
};
const out = (s: string) => process.stdout.write(s);
const addressText = (a: SnapshotAddresses) =>
  a.interfaces
    .map((i) => `${i.iface} ${i.addrs.map((x) => `${x.address}/${x.prefix}`).join(" ")}`)
    .join(", ");
const json = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);

async function guarded(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (!(e instanceof LibvirtError)) throw e;
    const fix = libvirtRemedy(e.code);
    process.stderr.write(`kvmstrap: libvirt: ${e.message}\n${fix ? `  fix: ${fix}\n` : ""}`);
    return EXIT.failed;
  }
}

export async function vmSnapshotCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_SNAPSHOT_OPTIONS);
  const [verb, vm, snap, extra] = positionals;
  if (values.help || verb === undefined) {
    out(VM_SNAPSHOT_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (!vm) throw new UsageError(`vm snapshot ${verb} needs a VM NAME`);
  const c = { uri: values.connect ?? DEFAULT_URI };
  return guarded(async () => {
    if (verb === "list") {
      if (snap !== undefined) throw new UsageError(`vm snapshot list takes no SNAP (got "${snap}")`);
      const r = await vmSnapshot({ verb, vm }, c);
      if (r.verb !== "list") return EXIT.internal;
      if (values.json) json(r);
      else if (r.snapshots.length === 0) out(`${vm}: no snapshots\n`);
      else
        for (const s of r.snapshots) {
          out(
            `${s.name.padEnd(20)} ${s.createdAt}  ${s.domainState.padEnd(8)} ${s.disks.map((d) => `${d.target}=${d.file}`).join(" ")}\n`,
          );
          if (s.addresses) out(`  addresses (${s.addresses.source}): ${addressText(s.addresses)}\n`);
        }
      return EXIT.ok;
    }
    if (verb !== "create" && verb !== "revert" && verb !== "delete")
      throw new UsageError(`unknown vm snapshot verb "${verb}" (create, list, revert or delete)`);
    if (!snap)
      throw new UsageError(`vm snapshot ${verb} needs a snapshot name: vm snapshot ${verb} ${vm} SNAP`);
    const r = await vmSnapshot({ verb, vm, snapshot: snap }, c);
    if (values.json) json(r);
    else if (r.verb === "create") {
      const q = r.result.quiesced ? "quiesced by the guest agent" : `not quiesced: ${r.result.quiesceNote}`;
      out(`${vm}: snapshot ${snap} taken in ${(r.result.durationMs / 1000).toFixed(2)} s (${q})\n`);
      for (const d of r.result.disks) out(`  ${d.target}: writes now go to ${d.file}\n`);
      const a = r.result.addresses;
      out(a ? `  addresses (${a.source}): ${addressText(a)}\n` : "  addresses: none known\n");
    } else if (r.verb === "revert")
      out(
        `${vm}: reverted to ${snap}${r.result.restarted ? " and started again" : " (it stays shut off)"}\n`,
      );
    else if (r.verb === "delete") out(`${vm}: snapshot ${snap} deleted (its overlay merged back)\n`);
    return EXIT.ok;
  });
}

export async function vmBackupCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_BACKUP_OPTIONS);
  const [vm, extra] = positionals;
  if (values.help || vm === undefined) {
    out(VM_BACKUP_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if (!values.to) throw new UsageError("vm backup needs --to DIR");
  const fullEvery = count(values["full-every"], "--full-every", 1);
  if (fullEvery !== undefined && !values.incremental)
    throw new UsageError("--full-every applies to --incremental");
  const keep = count(values.keep, "--keep", 1);
  const c = { uri: values.connect ?? DEFAULT_URI };
  return guarded(async () => {
    const r = await vmBackup(
      vm,
      values.to as string,
      {
        incremental: Boolean(values.incremental),
        ...(fullEvery !== undefined ? { fullEvery } : {}),
        ...(keep !== undefined ? { keep } : {}),
      },
      c,
    );
    if (values.json) json(r);
    else {
      const size = r.entry.files.reduce((n, f) => n + f.size, 0);
      out(
        `${vm}: ${r.entry.kind} backup ${r.entry.seq} in ${r.chainDir} (${(size / 2 ** 20).toFixed(1)} MiB, ` +
          `${(r.entry.durationMs / 1000).toFixed(2)} s, checkpoint ${r.entry.checkpoint})\n`,
      );
      for (const p of r.pruned) out(`  removed old chain ${p}\n`);
    }
    return EXIT.ok;
  });
}

export async function vmRestoreCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_RESTORE_OPTIONS);
  const [dir, extra] = positionals;
  if (values.help || dir === undefined) {
    out(VM_RESTORE_HELP);
    return values.help ? EXIT.ok : EXIT.usage;
  }
  if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
  if ((values.name === undefined) === !values.replace)
    throw new UsageError("vm restore needs exactly one of --name NEW or --replace");
  const upTo = count(values.upto, "--upto", 0);
  const c = { uri: values.connect ?? DEFAULT_URI };
  return guarded(async () => {
    const r = await vmRestore(
      dir,
      {
        target: values.name !== undefined ? { name: values.name } : { replace: true },
        vmDir: values.dir ?? DEFAULT_VM_DIR,
        ...(upTo !== undefined ? { upTo } : {}),
        start: Boolean(values.start),
      },
      c,
    );
    if (values.json) json(r);
    else {
      out(
        `${r.vm}: restored from ${r.from} (${r.backups} backup${r.backups === 1 ? "" : "s"}, checksums verified)${values.start ? ", started" : ""}\n`,
      );
      for (const d of r.disks) out(`  ${d.disk}: ${d.file}\n`);
    }
    return EXIT.ok;
  });
}
