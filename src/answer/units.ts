// Units and patterns of match rules: sizes as operators write them, shell globs, PCI addresses.

/** "500G" (decimal), "1.5TiB" (binary), "512MB", or a number of bytes. */
export function parseSize(value: string | number): number {
  if (typeof value === "number") return value;
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGTP])(i)?B?|B)?$/i.exec(value.trim());
  if (!m) throw new Error(`not a size: "${value}" (expected e.g. 500G, 2T, 1.5TiB)`);
  const power = m[2] ? "KMGTP".indexOf(m[2].toUpperCase()) + 1 : 0;
  return Math.round(Number(m[1]) * (m[3] ? 1024 : 1000) ** power);
}

/** Decimal, as disk vendors label them: 480.1 GB, 2 TB. */
export function formatSize(bytes: number): string {
  const [unit, div] = bytes >= 1e12 ? ["TB", 1e12] : bytes >= 1e9 ? ["GB", 1e9] : ["MB", 1e6];
  return `${Number((bytes / (div as number)).toFixed(1))} ${unit}`;
}

/** Shell-style glob with * and ?; the whole string must match. */
export function globMatch(pattern: string, text: string, ignoreCase = false): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`, ignoreCase ? "i" : "").test(text);
}

/** 01:00.0 -> 0000:01:00.0, lower case. */
export function normalizePci(address: string): string {
  const a = address.toLowerCase();
  return /^[0-9a-f]{4}:/.test(a) && a.length > 7 ? a : `0000:${a}`;
}
