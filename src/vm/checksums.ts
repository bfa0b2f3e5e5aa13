// Checksum files as distributions publish them: GNU coreutils lines ("HEX  NAME", "HEX *NAME"),
// BSD lines ("SHA256 (NAME) = HEX"), possibly inside a PGP clear-signed message.
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";

export type DigestType = "sha256" | "sha512";
const HEX_LEN: Record<DigestType, number> = { sha256: 64, sha512: 128 };

export type ChecksumLine = { name: string; type: DigestType; value: string };

export function parseChecksumFile(text: string): ChecksumLine[] {
  const out: ChecksumLine[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    const bsd = /^(SHA256|SHA512) ?\((.+)\) ?= ?([0-9a-fA-F]+)$/.exec(line);
    if (bsd?.[1] && bsd[2] && bsd[3]) {
      out.push({ type: bsd[1].toLowerCase() as DigestType, name: bsd[2], value: bsd[3].toLowerCase() });
      continue;
    }
    const gnu = /^([0-9a-fA-F]{64}|[0-9a-fA-F]{128}) [ *]?(.+)$/.exec(line);
    if (gnu?.[1] && gnu[2]) {
      out.push({
        type: gnu[1].length === 64 ? "sha256" : "sha512",
        name: gnu[2],
        value: gnu[1].toLowerCase(),
      });
    }
  }
  return out.filter((l) => l.value.length === HEX_LEN[l.type]);
}

/**
 * The digest a checksum file gives for `name` (compared by base name, "./" and "*" stripped). A file
 * with a single line of the right type is taken as that image's own (Rocky's per-image CHECKSUM).
 */
export function findChecksum(text: string, name: string, type: DigestType): string | undefined {
  const lines = parseChecksumFile(text).filter((l) => l.type === type);
  const base = (n: string) => n.replace(/^\*/, "").split("/").pop();
  const hit = lines.find((l) => base(l.name) === name);
  if (hit) return hit.value;
  return lines.length === 1 ? lines[0]?.value : undefined;
}

export const newHash = (type: DigestType): Hash => createHash(type);

/** Feeds an existing file into hash (to resume a partial download). */
export async function hashFileInto(file: string, hash: Hash): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    n += (chunk as Buffer).length;
  }
  return n;
}

/** The hex digest of a whole file, read in 1 MiB chunks. */
export async function digestFile(file: string, type: DigestType): Promise<string> {
  const hash = newHash(type);
  await hashFileInto(file, hash);
  return hash.digest("hex");
}
