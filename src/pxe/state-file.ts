// What the server keeps across restarts besides leases and keys: which nodes are installed (boot
// once), so a restart never sends an installed node back into the installer.
import { readFile, stat } from "node:fs/promises";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";

const MAX_BYTES = 4 * 1024 * 1024;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

export async function loadInstalled(file: string): Promise<string[]> {
  try {
    if ((await stat(file)).size > MAX_BYTES) throw new Error(`${file}: larger than ${MAX_BYTES} bytes`);
    const data = JSON.parse(await readFile(file, "utf8")) as { installed?: unknown };
    return Array.isArray(data.installed)
      ? data.installed.filter((m): m is string => typeof m === "string" && MAC.test(m))
      : [];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw new InputError(
      `${file}: ${(e as Error).message} (the server's record of installed nodes; fix or remove it)`,
    );
  }
}

export async function saveInstalled(file: string, installed: string[]): Promise<void> {
  await writeFileAtomic(
    file,
    `${JSON.stringify({ version: 1, installed: [...installed].sort() }, null, 2)}\n`,
    0o600,
  );
}
