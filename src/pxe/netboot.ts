// The appliance's netboot set (iso-build/out/netboot): vmlinuz, initrd.img, filesystem.squashfs and
// manifest.json (sizes, sha256, the kernel command line). The manifest is read bounded and checked
// with a schema, and every file it names must be there with its size, so a half-copied directory
// is refused when the server starts rather than when a node boots.
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { InputError } from "../core/errors.js";

export const MAX_MANIFEST_BYTES = 256 * 1024;

/** The files a per-node boot script needs. */
export const NETBOOT_FILES = ["vmlinuz", "initrd.img", "filesystem.squashfs"] as const;

const fileEntry = z.object({
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "64 lower-case hex digits"),
});

const manifestSchema = z.looseObject({
  name: z.string(),
  version: z.string(),
  /** The live system's kernel command line; @BASE@ stands for the URL of the netboot directory. */
  cmdline: z.string().min(1),
  files: z.record(z.string(), fileEntry),
});
export type NetbootManifest = z.infer<typeof manifestSchema>;

export interface NetbootFile {
  path: string;
  size: number;
  sha256: string;
}

export interface Netboot {
  dir: string;
  manifest: NetbootManifest;
  /** Servable files by name (those the manifest lists and that exist with their size). */
  files: Map<string, NetbootFile>;
}

/** iso-build/out/netboot beside this installation when it exists, else /opt/kvmstrap/netboot. */
export function defaultNetbootDir(): string {
  const beside = fileURLToPath(new URL("../../iso-build/out/netboot", import.meta.url));
  return existsSync(path.join(beside, "manifest.json")) ? beside : "/opt/kvmstrap/netboot";
}

export async function loadNetboot(dir: string): Promise<Netboot> {
  const file = path.join(dir, "manifest.json");
  const fail = (why: string): never => {
    throw new InputError(`${file}: ${why}`);
  };
  let text: string;
  try {
    const st = await stat(file);
    if (!st.isFile()) fail("not a regular file");
    if (st.size > MAX_MANIFEST_BYTES)
      fail(`${st.size} bytes is too large for a manifest (limit ${MAX_MANIFEST_BYTES})`);
    text = await readFile(file, "utf8");
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    return fail(
      code === "ENOENT"
        ? "no such file (is this a netboot directory? build one with `npm run image`, or pass --netboot DIR)"
        : `cannot read (${code ?? (e as Error).message})`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    return fail(`not JSON (${(e as Error).message})`);
  }
  const parsed = manifestSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return fail(`${issue?.path.join(".") || "(top level)"}: ${issue?.message ?? "invalid"}`);
  }
  const manifest = parsed.data;
  const files = new Map<string, NetbootFile>();
  for (const name of NETBOOT_FILES)
    if (!manifest.files[name])
      fail(`files.${name}: missing (a netboot set needs ${NETBOOT_FILES.join(", ")})`);
  for (const [name, entry] of Object.entries(manifest.files)) {
    if (name.includes("/") || name.startsWith(".")) fail(`files.${name}: not a plain file name`);
    const p = path.join(dir, name);
    const st = await stat(p).catch(() => undefined);
    if (!st?.isFile()) {
      if ((NETBOOT_FILES as readonly string[]).includes(name)) fail(`files.${name}: ${p} is missing`);
      continue;
    }
    if (st.size !== entry.size)
      fail(`files.${name}: ${p} has ${st.size} bytes, the manifest says ${entry.size} (a partial copy?)`);
    files.set(name, { path: p, size: entry.size, sha256: entry.sha256 });
  }
  return { dir, manifest, files };
}
