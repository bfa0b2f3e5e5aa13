import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { cachedPciIds } from "../../src/host/pci-names-cache.js";

const DB = "/usr/share/misc/pci.ids";

describe.skipIf(!existsSync(DB))("pci.ids names remembered for the boot", () => {
  it("reads the database once, then answers from the cache while the database is unchanged", async () => {
    const cacheFile = path.join(mkdtempSync(path.join(tmpdir(), "kvmstrap-pcinames-")), "pci-names.json");
    const ask = (ids: { vendor(v: string): string | null; device(v: string, d: string): string | null }) => [
      ids.vendor("8086"),
      ids.device("8086", "1521"),
    ];
    let first: (string | null)[] = [];
    await cachedPciIds((ids) => (first = ask(ids)), { cacheFile, paths: [DB] });
    expect(first).toEqual(["Intel Corporation", "I350 Gigabit Network Connection"]);
    const saved = JSON.parse(readFileSync(cacheFile, "utf8"));
    expect(saved.names["d:8086:1521"]).toBe("I350 Gigabit Network Connection");

    // A cached answer wins over the database (proving the database was not read again)...
    saved.names["v:8086"] = "from the cache";
    writeFileSync(cacheFile, JSON.stringify(saved));
    let second: (string | null)[] = [];
    await cachedPciIds((ids) => (second = ask(ids)), { cacheFile, paths: [DB] });
    expect(second[0]).toBe("from the cache");

    // ...until the database changes (another size or mtime), when it is read afresh.
    writeFileSync(cacheFile, JSON.stringify({ ...saved, key: "another database" }));
    let third: (string | null)[] = [];
    await cachedPciIds((ids) => (third = ask(ids)), { cacheFile, paths: [DB] });
    expect(third[0]).toBe("Intel Corporation");
  });
});
if (!existsSync(DB)) it.skip("pci.ids name cache: /usr/share/misc/pci.ids is not installed", () => {});
