// A backup chain on disk: DIR/chain-<time>/ holds domain.xml (the VM's inactive definition), one
// directory per backup (0-full, 1-incremental, ...) with one qcow2 file per disk, and manifest.json
// naming them in order with each one's checkpoint, the checkpoint it follows, its files' sizes and
// sha256. The manifest is the only record: a backup is part of the chain once the manifest (written
// atomically, last) names it, and a directory it does not name is a crashed run's leftover.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { InputError } from "../core/errors.js";

export const MANIFEST = "manifest.json";
export const DOMAIN_XML = "domain.xml";
export const CHAIN_PREFIX = "chain-";
const MAX_MANIFEST_BYTES = 1 << 20;

const relFile = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/, "a relative path inside the chain");

export const backupFileSchema = z.strictObject({
  disk: z.string().min(1),
  file: relFile,
  size: z.number().int().nonnegative(),
  virtualSize: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 hex digits"),
});
export const backupEntrySchema = z.strictObject({
  seq: z.number().int().nonnegative(),
  kind: z.enum(["full", "incremental"]),
  /** The checkpoint this backup created: the next incremental starts from it. */
  checkpoint: z.string().min(1),
  /** The checkpoint the changes are counted from (null for a full backup). */
  since: z.string().nullable(),
  takenAt: z.string(),
  durationMs: z.number().nonnegative(),
  files: z.array(backupFileSchema).min(1),
});
export const manifestSchema = z.strictObject({
  format: z.literal("kvmstrap-backup/1"),
  vm: z.string().min(1),
  domainXml: relFile,
  entries: z.array(backupEntrySchema),
});
export type BackupFile = z.infer<typeof backupFileSchema>;
export type BackupEntry = z.infer<typeof backupEntrySchema>;
export type Manifest = z.infer<typeof manifestSchema>;

export const entryDir = (e: Pick<BackupEntry, "seq" | "kind">) => `${e.seq}-${e.kind}`;

export function parseManifest(text: string, where: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new InputError(`${where}: not JSON (${(e as Error).message})`);
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new InputError(`${where}: ${i?.path.join(".") || "(top)"}: ${i?.message ?? "invalid"}`);
  }
  return r.data;
}

export async function readManifest(chainDir: string): Promise<Manifest> {
  const file = path.join(chainDir, MANIFEST);
  const h = await open(file, "r").catch((e: NodeJS.ErrnoException) => {
    throw new InputError(`${file}: ${e.code === "ENOENT" ? "no backup manifest here" : e.message}`);
  });
  try {
    const { size } = await h.stat();
    if (size > MAX_MANIFEST_BYTES)
      throw new InputError(`${file}: ${size} bytes, more than a manifest can be`);
    return parseManifest(await h.readFile("utf8"), file);
  } finally {
    await h.close();
  }
}

/** The chain's order: a full backup first, then incrementals each counted from the one before. */
export function checkChain(m: Manifest, where: string): void {
  if (m.entries.length === 0) throw new InputError(`${where}: the chain has no backups`);
  const disks = (e: BackupEntry) =>
    e.files
      .map((f) => f.disk)
      .sort()
      .join(",");
  m.entries.forEach((e, i) => {
    const at = `${where}: entries[${i}] (${entryDir(e)})`;
    if (e.seq !== i)
      throw new InputError(`${at}: seq ${e.seq}, expected ${i}: a backup is missing from the chain`);
    if (i === 0) {
      if (e.kind !== "full" || e.since !== null)
        throw new InputError(`${at}: the chain must start with a full backup`);
      return;
    }
    const prev = m.entries[i - 1] as BackupEntry;
    if (e.kind !== "incremental") throw new InputError(`${at}: a full backup inside a chain`);
    if (e.since !== prev.checkpoint)
      throw new InputError(
        `${at}: counts changes since checkpoint "${e.since}", but the backup before it made "${prev.checkpoint}": broken chain`,
      );
    if (disks(e) !== disks(prev)) throw new InputError(`${at}: disks ${disks(e)} differ from ${disks(prev)}`);
  });
}

export function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
}

/** Every file of the chain (up to entry `upTo`) has its recorded size and sha256, or the error names it. */
export async function verifyChainFiles(
  chainDir: string,
  m: Manifest,
  upTo = m.entries.length - 1,
): Promise<void> {
  for (const e of m.entries.slice(0, upTo + 1)) {
    for (const f of e.files) {
      const file = path.join(chainDir, f.file);
      const st = await stat(file).catch(() => null);
      if (!st) throw new InputError(`${file}: missing (backup ${entryDir(e)}, disk ${f.disk})`);
      if (st.size !== f.size) throw new InputError(`${file}: ${st.size} bytes, the manifest says ${f.size}`);
      const sum = await sha256File(file);
      if (sum !== f.sha256)
        throw new InputError(`${file}: sha256 ${sum} does not match the manifest's ${f.sha256}`);
    }
  }
}
