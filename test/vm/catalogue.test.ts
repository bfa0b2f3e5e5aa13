// The image catalogue in images/: every entry loads; a broken one is named by file and key.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { InputError } from "../../src/cli/errors.js";
import { DEFAULT_CATALOGUE_DIR, expectedChecksum, findEntry, loadCatalogue } from "../../src/vm/catalogue.js";

const debian = readFileSync(path.join(DEFAULT_CATALOGUE_DIR, "debian-12.yaml"), "utf8");
const brokenDir = (file: string, text: string) => {
  const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-cat-"));
  writeFileSync(path.join(dir, "debian-12.yaml"), debian);
  writeFileSync(path.join(dir, file), text);
  return dir;
};
const failure = async (dir: string) => {
  const e = await loadCatalogue(dir).then(
    () => undefined,
    (err: unknown) => err as Error,
  );
  expect(e).toBeInstanceOf(InputError);
  return e?.message ?? "";
};

describe("image catalogue", () => {
  it("loads every shipped entry: the seven distributions, official https URLs, checksum files", async () => {
    const all = await loadCatalogue();
    expect(all.map((e) => e.name)).toEqual([
      "alma-9",
      "debian-12",
      "debian-13",
      "fedora-44",
      "rocky-9",
      "ubuntu-22.04",
      "ubuntu-24.04",
    ]);
    for (const e of all) {
      expect(e.url).toMatch(/^https:\/\//);
      expect(e.checksumUrl).toMatch(/^https:\/\//);
      expect(new URL(e.checksumUrl ?? "").host).toBe(new URL(e.url).host);
    }
    const d12 = findEntry(all, "debian-12");
    expect(d12).toMatchObject({ osinfo: "debian12", defaultUser: "debian", format: "qcow2" });
    expect(expectedChecksum(d12)).toEqual({
      type: "sha512",
      url: "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS",
      name: "debian-12-generic-amd64.qcow2",
    });
  });

  it("names the file and key of a broken entry", async () => {
    const bad = debian.replace("debian-12", "broken").replace("checksumType: sha512", "checksumType: md5");
    const dir = brokenDir("broken.yaml", bad);
    expect(await failure(dir)).toMatch(new RegExp(`^${dir}/broken\\.yaml: checksumType: `));
    const unknownKey = brokenDir("broken.yaml", `${debian.replace("debian-12\n", "broken\n")}colour: blue\n`);
    expect(await failure(unknownKey)).toMatch(/broken\.yaml: .*colour/);
    const noUrl = brokenDir(
      "broken.yaml",
      debian.replace("debian-12\n", "broken\n").replace(/^url: .*$/m, ""),
    );
    expect(await failure(noUrl)).toMatch(/broken\.yaml: url: /);
    const both = brokenDir(
      "broken.yaml",
      `${debian.replace("debian-12\n", "broken\n")}sha256: ${"a".repeat(64)}\n`,
    );
    expect(await failure(both)).toMatch(/broken\.yaml: checksumUrl: give exactly one of/);
    const syntax = brokenDir("broken.yaml", "name: [unclosed\n");
    expect(await failure(syntax)).toMatch(/broken\.yaml:\d+:\d+: /);
    const misnamed = brokenDir("other.yaml", debian.replace("name: debian-12", "name: debian-99"));
    expect(await failure(misnamed)).toMatch(/other\.yaml: name: "debian-99" must match the file name/);
  });

  it("lists the known names for an unknown image", async () => {
    const all = await loadCatalogue();
    expect(() => findEntry(all, "windows-11")).toThrow(
      /unknown image "windows-11"; the catalogue has: alma-9, debian-12/,
    );
  });
});
