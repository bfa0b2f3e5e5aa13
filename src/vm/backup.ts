// `vm backup`: push-mode backups of a running VM through libvirt's backup-begin. A full backup starts
// a new chain (DIR/chain-<time>/) and makes a checkpoint (a dirty bitmap in the qcow2 disk); an
// incremental one writes only the clusters changed since the chain's last checkpoint and makes the
// next. Each backup is written under a temporary name, its files fsync'ed and hashed, renamed into
// place, and only then named by the manifest (written atomically): a crash at any point leaves the
// chain as it was plus a leftover that the next run removes. Retention keeps the newest N chains.
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { syncDir, TMP_MARK, writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import {
  type BackupEntry,
  type BackupFile,
  CHAIN_PREFIX,
  checkChain,
  DOMAIN_XML,
  entryDir,
  MANIFEST,
  type Manifest,
  readManifest,
  sha256File,
} from "./backup-manifest.js";
import type { Libvirt } from "./libvirt.js";
import { snapshotable, type VmDisk, vmDisks } from "./snapshot.js";

export type BackupDeps = { libvirt: Libvirt; runner?: CommandRunner; now?: () => Date };
export type BackupOptions = {
  /** Counted from the newest chain's last checkpoint; without fullEvery, a chain must exist. */
  incremental?: boolean;
  /** With incremental: start a new chain (a full backup) once the newest has this many backups. */
  fullEvery?: number;
  /** After a backup, keep only this many chains (the newest). */
  keep?: number;
  /** How long the backup job may take. */
  timeoutMs?: number;
};
export type BackupResult = { vm: string; chainDir: string; entry: BackupEntry; pruned: string[] };

const esc = (s: string) =>
  s.replace(
    /[<>&'"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", "'": "&apos;", '"': "&quot;" })[c] ?? c,
  );
const stamp = (d: Date) =>
  d
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");

export function backupXmlFor(disks: VmDisk[], files: Map<string, string>, since: string | null): string {
  const lines = disks.map((d) => {
    const file = files.get(d.target);
    return file
      ? `    <disk name='${esc(d.target)}' backup='yes' type='file'><driver type='qcow2'/><target file='${esc(file)}'/></disk>`
      : `    <disk name='${esc(d.target)}' backup='no'/>`;
  });
  const inc = since === null ? "" : `  <incremental>${esc(since)}</incremental>\n`;
  return `<domainbackup mode='push'>\n${inc}  <disks>\n${lines.join("\n")}\n  </disks>\n</domainbackup>\n`;
}

export function checkpointXmlFor(name: string, disks: VmDisk[], covered: Set<string>): string {
  const lines = disks.map(
    (d) => `    <disk name='${esc(d.target)}' checkpoint='${covered.has(d.target) ? "bitmap" : "no"}'/>`,
  );
  return `<domaincheckpoint>\n  <name>${esc(name)}</name>\n  <description>kvmstrap vm backup</description>\n  <disks>\n${lines.join("\n")}\n  </disks>\n</domaincheckpoint>\n`;
}

/** The chains in a backup directory, oldest first (their names sort by time). */
export async function listChains(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const chains: string[] = [];
  for (const n of names.sort()) {
    if (!n.startsWith(CHAIN_PREFIX) || n.includes(TMP_MARK)) continue;
    if (await stat(path.join(dir, n, MANIFEST)).catch(() => null)) chains.push(path.join(dir, n));
  }
  return chains;
}

async function fsyncFile(file: string): Promise<void> {
  const h = await open(file, "r");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Removes what a crashed run left: temporary chains in DIR and entry directories no manifest names. */
async function removeLeftovers(dir: string, chainDir: string | null, m: Manifest | null): Promise<void> {
  for (const n of await readdir(dir).catch(() => [] as string[]))
    if (n.startsWith(CHAIN_PREFIX) && n.includes(TMP_MARK))
      await rm(path.join(dir, n), { recursive: true, force: true });
  if (!chainDir || !m) return;
  const named = new Set(m.entries.map(entryDir));
  for (const n of await readdir(chainDir)) {
    const isEntry = /^\d+-(full|incremental)/.test(n);
    if ((isEntry && !named.has(n)) || n.includes(TMP_MARK))
      await rm(path.join(chainDir, n), { recursive: true, force: true });
  }
}

async function waitForJob(lv: Libvirt, vm: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let pause = 20;
  for (;;) {
    const job = await lv.jobInfo(vm);
    if ((job["Job type"] ?? "None") === "None") break;
    if (Date.now() > deadline)
      throw new Error(`the backup job of "${vm}" is still running after ${timeoutMs} ms`);
    await sleep(pause);
    pause = Math.min(pause * 2, 500);
  }
  const done = await lv.jobInfo(vm, true);
  if (done["Job type"] !== "Completed")
    throw new Error(
      `the backup job of "${vm}" ended ${done["Job type"] ?? "without a status"}${done["Error message"] ? `: ${done["Error message"]}` : ""}`,
    );
}

export async function backupVm(
  vm: string,
  dirGiven: string,
  deps: BackupDeps,
  options: BackupOptions = {},
): Promise<BackupResult> {
  const lv = deps.libvirt;
  const runner = deps.runner ?? new ExecaRunner();
  const now = deps.now ?? (() => new Date());
  const dir = path.resolve(dirGiven); // libvirtd writes the files: a relative path would be its own
  if (!(await lv.domainExists(vm))) throw new InputError(`no such VM "${vm}" on ${lv.uri}`);
  if ((await lv.domainState(vm)) !== "running")
    throw new InputError(`VM "${vm}" is not running: libvirt backs up running VMs only (start it first)`);
  await mkdir(dir, { recursive: true });
  const newest = (await listChains(dir)).at(-1) ?? null;
  const m: Manifest | null = newest ? await readManifest(newest) : null;
  if (m) checkChain(m, path.join(newest as string, MANIFEST));
  if (m && m.vm !== vm) throw new InputError(`${dir} holds backups of "${m.vm}", not "${vm}"`);
  await removeLeftovers(dir, newest, m);

  let full = !options.incremental;
  if (!full && (!m || (options.fullEvery !== undefined && m.entries.length >= options.fullEvery))) {
    if (!m && options.fullEvery === undefined)
      throw new InputError(
        `${dir} has no backup chain of "${vm}" yet: take a full backup first (without --incremental)`,
      );
    full = true;
  }
  const since = full ? null : ((m as Manifest).entries.at(-1) as BackupEntry).checkpoint;
  if (since !== null && !(await lv.checkpointNames(vm)).includes(since))
    throw new InputError(
      `VM "${vm}" no longer has checkpoint "${since}" of the last backup: take a full backup`,
    );

  const taken = now();
  const chainDir = full ? path.join(dir, `${CHAIN_PREFIX}${stamp(taken)}`) : (newest as string);
  if (full && (await stat(chainDir).catch(() => null))) throw new InputError(`${chainDir} already exists`);
  const seq = full ? 0 : (m as Manifest).entries.length;
  const kind = full ? ("full" as const) : ("incremental" as const);
  // A full chain is built whole under a temporary name; an incremental entry under one inside the chain.
  const workChain = full ? `${chainDir}${TMP_MARK}${process.pid}` : chainDir;
  const finalEntry = path.join(workChain, entryDir({ seq, kind }));
  const workEntry = full ? finalEntry : `${finalEntry}${TMP_MARK}${process.pid}`;
  await mkdir(workEntry, { recursive: true });

  const disks = await vmDisks(lv, vm);
  const covered = disks.filter(snapshotable);
  if (covered.length === 0) throw new InputError(`VM "${vm}" has no writable file disk to back up`);
  const targets = new Map(covered.map((d) => [d.target, path.join(workEntry, `${d.target}.qcow2`)]));
  const checkpoint = `kvmstrap-${path.basename(chainDir).slice(CHAIN_PREFIX.length)}-${seq}`;
  const started = Date.now();
  try {
    await lv.backupBegin(
      vm,
      backupXmlFor(disks, targets, since),
      checkpointXmlFor(checkpoint, disks, new Set(targets.keys())),
    );
    await waitForJob(lv, vm, options.timeoutMs ?? 6 * 3600_000);
  } catch (e) {
    await lv.checkpointDelete(vm, checkpoint).catch(() => undefined);
    await rm(full ? workChain : workEntry, { recursive: true, force: true });
    throw e;
  }
  const durationMs = Date.now() - started;

  const files: BackupFile[] = [];
  for (const d of covered) {
    const file = targets.get(d.target) as string;
    await fsyncFile(file);
    const info = await runner.run("qemu-img", ["info", "--output=json", file], { timeoutMs: 60_000 });
    if (info.exitCode !== 0) throw new Error(`qemu-img info ${file}: ${info.stderr.trim()}`);
    files.push({
      disk: d.target,
      file: `${entryDir({ seq, kind })}/${d.target}.qcow2`,
      size: (await stat(file)).size,
      virtualSize: (JSON.parse(info.stdout) as { "virtual-size": number })["virtual-size"],
      sha256: await sha256File(file),
    });
  }
  const entry: BackupEntry = {
    seq,
    kind,
    checkpoint,
    since,
    takenAt: taken.toISOString(),
    durationMs,
    files,
  };
  if (full) {
    await writeFileAtomic(
      path.join(workChain, DOMAIN_XML),
      await lv.domainXml(vm, { inactive: true }),
      0o600,
    );
    const manifest: Manifest = { format: "kvmstrap-backup/1", vm, domainXml: DOMAIN_XML, entries: [entry] };
    await writeFileAtomic(path.join(workChain, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await syncDir(workEntry);
    await rename(workChain, chainDir);
    await syncDir(dir);
  } else {
    await syncDir(workEntry);
    await rename(workEntry, finalEntry);
    await syncDir(chainDir);
    const manifest: Manifest = { ...(m as Manifest), entries: [...(m as Manifest).entries, entry] };
    await writeFileAtomic(path.join(chainDir, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  }
  const pruned = options.keep ? await prune(vm, dir, options.keep, lv) : [];
  return { vm, chainDir, entry, pruned };
}

/** Keeps the newest `keep` chains; the older ones' checkpoints are deleted from the VM too. */
async function prune(vm: string, dir: string, keep: number, lv: Libvirt): Promise<string[]> {
  const chains = await listChains(dir);
  const old = chains.slice(0, Math.max(0, chains.length - keep));
  const existing = new Set(await lv.checkpointNames(vm));
  for (const chain of old) {
    const m = await readManifest(chain);
    for (const e of m.entries)
      if (existing.has(e.checkpoint)) await lv.checkpointDelete(vm, e.checkpoint).catch(() => undefined);
    // Renamed first, so a crash mid-removal leaves a temporary name the next run clears, never half a chain.
    const doomed = `${chain}${TMP_MARK}${process.pid}`;
    await rename(chain, doomed);
    await rm(doomed, { recursive: true, force: true });
  }
  return old;
}
