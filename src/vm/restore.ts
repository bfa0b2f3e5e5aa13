// `vm restore`: a VM rebuilt from a backup chain. The manifest is checked first (a full backup, then
// incrementals each counted from the one before) and every file's size and sha256 (a mismatch is
// refused naming the file); then each disk is flattened by `qemu-img convert` of the chain, read as
// the newest incremental over the ones before over the full backup (a json: image description, so
// the backup files are never modified), into a temporary file renamed into place when complete. The
// VM is then defined from the chain's domain.xml: under a new name (no UUID, new MACs, its own serial
// log) or, with replace, over the VM the chain came from.
import { readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { cleanStaleTemps, publishFile, TMP_MARK } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { listChains } from "./backup.js";
import {
  type BackupEntry,
  checkChain,
  MANIFEST,
  type Manifest,
  readManifest,
  verifyChainFiles,
} from "./backup-manifest.js";
import type { Libvirt } from "./libvirt.js";

export type RestoreDeps = { libvirt: Libvirt; runner?: CommandRunner };
export type RestoreOptions = {
  /** Define the restored VM under this name; or replace the VM the chain came from. */
  target: { name: string } | { replace: true };
  /** Where the restored disks go. */
  vmDir: string;
  /** Restore up to this backup of the chain (its seq); default the newest. */
  upTo?: number;
  start?: boolean;
};
export type RestoreResult = {
  vm: string;
  from: string;
  backups: number;
  disks: { disk: string; file: string }[];
};

/** DIR is a chain (it holds manifest.json) or a backup directory (its newest chain). */
export async function resolveChain(dir: string): Promise<string> {
  if (await stat(path.join(dir, MANIFEST)).catch(() => null)) return dir;
  const newest = (await listChains(dir)).at(-1);
  if (!newest) throw new InputError(`${dir}: no backup chain here (no ${MANIFEST}, no chain-* directory)`);
  return newest;
}

/** qemu's description of one disk's chain up to `entries`' last: each incremental over the one before. */
export function chainImage(chainDir: string, entries: BackupEntry[], disk: string): object {
  let image: Record<string, unknown> | null = null;
  for (const e of entries) {
    const f = e.files.find((x) => x.disk === disk);
    if (!f) throw new InputError(`backup ${e.seq} has no file for disk ${disk}`);
    const layer: Record<string, unknown> = {
      driver: "qcow2",
      file: { driver: "file", filename: path.join(chainDir, f.file) },
    };
    // An incremental holds only the changed clusters; the rest reads through to the backup before it.
    layer.backing = image;
    image = layer;
  }
  if (!image) throw new InputError("no backups to restore");
  return image;
}

const attrEsc = (s: string) => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The chain's domain XML made into the restored VM's: new disks, and for a new name no UUID, MACs or metadata. */
export function restoredDomainXml(
  xml: string,
  disks: Map<string, string>,
  rename: { name: string; serialLog: string } | null,
): string {
  let out = xml.replace(/<disk\b[\s\S]*?<\/disk>/g, (block) => {
    const dev = /<target\s[^>]*dev=['"]([^'"]+)['"]/.exec(block)?.[1];
    const file = dev ? disks.get(dev) : undefined;
    if (!file) return block;
    return block
      .replace(/<source\s[^>]*\/>|<source\s[^>]*>[\s\S]*?<\/source>/, `<source file='${attrEsc(file)}'/>`)
      .replace(/<backingStore\b[\s\S]*?<\/backingStore>|<backingStore\s*\/>/g, "")
      .replace(/(<driver\b[^>]*\btype=)['"][^'"]*['"]/, "$1'qcow2'");
  });
  if (rename) {
    out = out
      .replace(/<name>[^<]*<\/name>/, `<name>${attrEsc(rename.name)}</name>`)
      .replace(/\s*<uuid>[^<]*<\/uuid>/, "")
      .replace(/\s*<mac address=['"][^'"]*['"]\s*\/>/g, "")
      .replace(/\s*<metadata>[\s\S]*?<\/metadata>/, "")
      .replace(/<log file=['"][^'"]*['"]/g, `<log file='${attrEsc(rename.serialLog)}'`);
  }
  return out;
}

/** Flattens one disk's chain into a temporary file beside `out`; returns its name. */
async function convert(runner: CommandRunner, image: object, out: string): Promise<string> {
  const tmp = `${out}${TMP_MARK}${process.pid}`;
  const r = await runner.run("qemu-img", ["convert", "-O", "qcow2", `json:${JSON.stringify(image)}`, tmp], {
    timeoutMs: 6 * 3600_000,
  });
  if (r.exitCode !== 0) {
    await rm(tmp, { force: true });
    throw new Error(`qemu-img convert to ${out} failed: ${r.stderr.trim()}`);
  }
  return tmp;
}

export async function restoreVm(
  dir: string,
  deps: RestoreDeps,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const lv = deps.libvirt;
  const runner = deps.runner ?? new ExecaRunner();
  const chainDir = await resolveChain(path.resolve(dir));
  const vmDir = path.resolve(options.vmDir); // the domain names its disks by absolute path
  const where = path.join(chainDir, MANIFEST);
  const m: Manifest = await readManifest(chainDir);
  checkChain(m, where);
  const upTo = options.upTo ?? m.entries.length - 1;
  if (upTo < 0 || upTo >= m.entries.length)
    throw new InputError(`${where}: no backup ${upTo} (the chain has 0 to ${m.entries.length - 1})`);
  await verifyChainFiles(chainDir, m, upTo);
  const entries = m.entries.slice(0, upTo + 1);
  const name = "name" in options.target ? options.target.name : m.vm;
  const replace = !("name" in options.target);
  const exists = await lv.domainExists(name);
  if (!replace && exists)
    throw new InputError(`VM "${name}" already exists: pick another --name, or --replace`);
  if (replace && exists && (await lv.domainState(name)) === "running")
    throw new InputError(`VM "${name}" is running: stop it before restoring over it`);

  const stampNow = new Date()
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  const disks = new Map<string, string>();
  const first = entries[0] as BackupEntry;
  for (const f of first.files) {
    const base = replace ? `${name}.restored-${stampNow}` : name;
    const file = path.join(
      vmDir,
      f.disk === first.files[0]?.disk ? `${base}.qcow2` : `${base}-${f.disk}.qcow2`,
    );
    if (await stat(file).catch(() => null))
      throw new InputError(
        `${file} already exists (a restore stopped before defining its VM leaves one: remove it)`,
      );
    await cleanStaleTemps(file); // a killed restore's partial copy
    disks.set(f.disk, file);
  }
  const temps: string[] = [];
  const done: string[] = [];
  try {
    for (const [disk, file] of disks)
      temps.push(await convert(runner, chainImage(chainDir, entries, disk), file));
    // Every disk complete before any takes its name; the VM is defined right after.
    for (const [i, file] of [...disks.values()].entries()) {
      await publishFile(temps[i] as string, file);
      done.push(file);
    }
    const xml = await readFile(path.join(chainDir, m.domainXml), "utf8");
    const domain = restoredDomainXml(
      xml,
      disks,
      replace ? null : { name, serialLog: path.join(vmDir, `${name}.serial.log`) },
    );
    if (replace && exists) {
      // The old disks' checkpoints and snapshots describe files the VM no longer uses.
      for (const cp of (await lv.checkpointNames(name)).reverse())
        await lv.checkpointDelete(name, cp, { metadataOnly: true });
      for (const s of (await lv.snapshotNames(name)).reverse())
        await lv.snapshotDelete(name, s, { metadataOnly: true });
    }
    await lv.defineDomain(domain);
  } catch (e) {
    for (const f of [...temps, ...done]) await rm(f, { force: true });
    throw e;
  }
  if (options.start) await lv.start(name);
  return {
    vm: name,
    from: chainDir,
    backups: entries.length,
    disks: [...disks].map(([disk, file]) => ({ disk, file })),
  };
}
