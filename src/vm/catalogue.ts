// The image catalogue: images/*.yaml, one cloud image's metadata per file (never the image itself).
// Every entry is checked strictly (unknown keys are errors) and a bad one is reported as an
// InputError (exit 2) naming the file and the key.
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import { z } from "zod";
import { InputError } from "../core/errors.js";

/** images/ in the package: two levels up from src/vm and from dist/vm alike. */
export const DEFAULT_CATALOGUE_DIR = fileURLToPath(new URL("../../images/", import.meta.url));

const hex = (len: number) =>
  z.string().regex(new RegExp(`^[0-9a-fA-F]{${len}}$`), `expected ${len} hex digits`);
const https = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), "expected an http(s) URL");

export const IMAGE_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

export const catalogueEntrySchema = z
  .strictObject({
    name: z
      .string()
      .regex(IMAGE_NAME, "lower-case letters, digits, '.', '_' and '-' (a file name in the cache)"),
    os: z.string().min(1),
    version: z.string().min(1),
    arch: z.enum(["x86_64", "aarch64"]),
    url: https,
    /** The image's digest, when it is pinned in the entry. */
    sha256: hex(64).optional(),
    sha512: hex(128).optional(),
    /** Or a checksum file (SHA256SUMS, SHA512SUMS, CHECKSUM; GNU or BSD lines) naming the image. */
    checksumUrl: https.optional(),
    checksumType: z.enum(["sha256", "sha512"]).optional(),
    /** The file name the checksum file lists, when it is not the URL's last path segment. */
    checksumName: z.string().min(1).optional(),
    defaultUser: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "a Linux user name"),
    /** libosinfo short id (osinfo-query os), for virt-install --osinfo / the domain XML. */
    osinfo: z.string().regex(/^[a-z][a-z0-9.-]*$/, "an osinfo short id such as debian12"),
    format: z.enum(["qcow2", "raw"]),
    description: z.string().optional(),
  })
  .superRefine((e, ctx) => {
    const pinned = [e.sha256, e.sha512].filter(Boolean).length;
    if (pinned + (e.checksumUrl ? 1 : 0) !== 1) {
      ctx.addIssue({
        code: "custom",
        path: ["checksumUrl"],
        message: "give exactly one of sha256, sha512 or checksumUrl (with checksumType)",
      });
    }
    if (e.checksumUrl && !e.checksumType) {
      ctx.addIssue({ code: "custom", path: ["checksumType"], message: "required with checksumUrl" });
    }
    if (!e.checksumUrl && (e.checksumType || e.checksumName)) {
      ctx.addIssue({ code: "custom", path: ["checksumType"], message: "only allowed with checksumUrl" });
    }
  });

export type CatalogueEntry = z.infer<typeof catalogueEntrySchema>;

export type ExpectedChecksum = { type: "sha256" | "sha512"; value?: string; url?: string; name: string };

/** How an entry's download is verified: a pinned digest or a line of a checksum file. */
export function expectedChecksum(e: CatalogueEntry): ExpectedChecksum {
  const name = e.checksumName ?? decodeURIComponent(new URL(e.url).pathname.split("/").pop() ?? e.name);
  if (e.sha256) return { type: "sha256", value: e.sha256.toLowerCase(), name };
  if (e.sha512) return { type: "sha512", value: e.sha512.toLowerCase(), name };
  return { type: e.checksumType ?? "sha256", url: e.checksumUrl, name };
}

/** Parses and checks one catalogue file's text; errors read "FILE: KEY: message". */
export function parseCatalogueEntry(text: string, file: string): CatalogueEntry {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  const first = doc.errors[0];
  if (first) {
    const pos = first.linePos?.[0];
    throw new InputError(`${file}${pos ? `:${pos.line}:${pos.col}` : ""}: ${first.message.split("\n")[0]}`);
  }
  const r = catalogueEntrySchema.safeParse(doc.toJS());
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = issue?.path.length ? issue.path.join(".") : "(top level)";
    throw new InputError(`${file}: ${key}: ${issue?.message ?? "invalid entry"}`);
  }
  if (path.basename(file).replace(/\.ya?ml$/, "") !== r.data.name) {
    throw new InputError(`${file}: name: "${r.data.name}" must match the file name`);
  }
  return r.data;
}

/** Loads every *.yaml/*.yml in dir, sorted by name. */
export async function loadCatalogue(dir: string = DEFAULT_CATALOGUE_DIR): Promise<CatalogueEntry[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (e) {
    throw new InputError(`${dir}: cannot read the image catalogue (${(e as NodeJS.ErrnoException).code})`);
  }
  const entries: CatalogueEntry[] = [];
  for (const n of names) {
    const file = path.join(dir, n);
    entries.push(parseCatalogueEntry(await readFile(file, "utf8"), file));
  }
  return entries.sort((a, b) => a.name.localeCompare(b.name));
}

/** The entry called name, or an InputError listing the known names. */
export function findEntry(entries: CatalogueEntry[], name: string): CatalogueEntry {
  const hit = entries.find((e) => e.name === name);
  if (!hit) {
    const known = entries.map((e) => e.name).join(", ") || "none";
    throw new InputError(`unknown image "${name}"; the catalogue has: ${known}`);
  }
  return hit;
}
