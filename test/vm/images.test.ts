// The image cache against a real HTTP server on 127.0.0.1 and real qemu-img.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/cli/errors.js";
import type { CatalogueEntry } from "../../src/vm/catalogue.js";
import {
  deleteImage,
  ImageError,
  imageUsers,
  importImage,
  listImages,
  type PullProgress,
  pullImage,
} from "../../src/vm/images.js";
import { writeRecord } from "../../src/vm/vm-state.js";
import { closedPort, type ImageServer, startImageServer } from "./image-server.js";

let srv: ImageServer;
let cacheDir: string;
const entry = (over: Partial<CatalogueEntry> = {}): CatalogueEntry => ({
  name: "test-img",
  os: "test",
  version: "1",
  arch: "x86_64",
  url: `${srv.base}/img.qcow2`,
  checksumUrl: `${srv.base}/SHA256SUMS`,
  checksumType: "sha256",
  defaultUser: "debian",
  osinfo: "debian12",
  format: "qcow2",
  ...over,
});
const caught = async (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e as Error,
  );

beforeAll(async () => {
  srv = await startImageServer();
});
afterAll(async () => {
  await srv.close();
});
beforeEach(() => {
  cacheDir = mkdtempSync(path.join(tmpdir(), "kvmstrap-cache-"));
  srv.requests.length = 0;
  srv.dropAfter = undefined;
  srv.ignoreRange = false;
});
afterEach(() => rmSync(cacheDir, { recursive: true, force: true }));

describe("pullImage", () => {
  it("streams, reports progress, verifies against SHA256SUMS and caches read-only", async () => {
    const events: PullProgress[] = [];
    const r = await pullImage(entry(), { cacheDir, onProgress: (p) => events.push(p) });
    expect(r.cached).toBe(false);
    expect(r.checksum).toEqual({ type: "sha256", value: srv.sha256 });
    expect(r.size).toBe(srv.image.length);
    expect(readFileSync(r.path).equals(srv.image)).toBe(true);
    expect(statSync(r.path).mode & 0o777).toBe(0o444);
    expect(existsSync(path.join(cacheDir, "test-img.partial"))).toBe(false);
    const phases = [...new Set(events.map((e) => e.phase))];
    expect(phases).toEqual(["checksum", "download", "verify", "done"]);
    const dl = events.filter((e) => e.phase === "download");
    expect(dl.at(-1)?.received).toBe(srv.image.length);
    expect(dl.every((e, i) => i === 0 || e.received >= (dl[i - 1]?.received ?? 0))).toBe(true);
    expect(dl.at(-1)?.bytesPerSecond).toBeGreaterThan(0);
    // A second pull finds it cached and downloads nothing.
    srv.requests.length = 0;
    const again = await pullImage(entry(), { cacheDir });
    expect(again.cached).toBe(true);
    expect(srv.requests.map((q) => q.url)).toEqual(["/SHA256SUMS"]);
    const listed = await listImages(cacheDir);
    expect(listed.map((i) => [i.name, i.format, i.size, i.checksum.value])).toEqual([
      ["test-img", "qcow2", srv.image.length, srv.sha256],
    ]);
    expect(listed[0]?.virtualSize).toBe(srv.image.length); // qemu-img reads random bytes as raw
  });

  it("keeps NAME.partial when the server drops the connection and resumes it with a Range request", async () => {
    srv.dropAfter = 8 * 1024 * 1024;
    const err = await caught(pullImage(entry(), { cacheDir, retries: 0 }));
    expect(err).toBeInstanceOf(ImageError);
    expect((err as ImageError).code).toBe("interrupted");
    expect(err?.message).toMatch(/interrupted after .* MB.*run the pull again to resume/);
    const partial = path.join(cacheDir, "test-img.partial");
    const have = statSync(partial).size;
    expect(have).toBeGreaterThan(0);
    expect(have).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(existsSync(path.join(cacheDir, "test-img.qcow2"))).toBe(false);

    const events: PullProgress[] = [];
    const r = await pullImage(entry(), { cacheDir, onProgress: (p) => events.push(p) });
    expect(r.resumed).toBe(true);
    expect(srv.requests.filter((q) => q.url === "/img.qcow2").at(-1)?.range).toBe(`bytes=${have}-`);
    expect(events.find((e) => e.phase === "rehash")?.total).toBe(have);
    expect(readFileSync(r.path).equals(srv.image)).toBe(true);
    expect(existsSync(partial)).toBe(false);
  });

  it("resumes within one call after a drop (default retries)", async () => {
    srv.dropAfter = 5 * 1024 * 1024;
    const r = await pullImage(entry(), { cacheDir });
    expect(r.resumed).toBe(true);
    expect(srv.requests.filter((q) => q.range).length).toBe(1);
    expect(r.checksum.value).toBe(srv.sha256);
  });

  it("starts over when the server ignores Range", async () => {
    srv.dropAfter = 3 * 1024 * 1024;
    srv.ignoreRange = true;
    const r = await pullImage(entry(), { cacheDir });
    expect(r.resumed).toBe(false);
    expect(readFileSync(r.path).equals(srv.image)).toBe(true);
  });

  it("deletes a download whose checksum does not match and caches nothing", async () => {
    const err = await caught(pullImage(entry({ checksumUrl: `${srv.base}/bad/SHA256SUMS` }), { cacheDir }));
    expect((err as ImageError).code).toBe("checksum-mismatch");
    expect(err?.message).toMatch(
      new RegExp(`^checksum mismatch for test-img: expected sha256:[0-9a-f]{64}, got sha256:${srv.sha256}$`),
    );
    expect(readdirSync(cacheDir).filter((f) => f !== "index.json")).toEqual([]);
    expect(await listImages(cacheDir)).toEqual([]);
  });

  it("verifies a digest pinned in the entry", async () => {
    const wrong = "ab".repeat(32);
    const e = entry({ checksumUrl: undefined, checksumType: undefined, sha256: wrong });
    expect((await caught(pullImage(e, { cacheDir })))?.message).toContain(`expected sha256:${wrong}`);
    const ok = await pullImage(
      entry({ checksumUrl: undefined, checksumType: undefined, sha256: srv.sha256 }),
      {
        cacheDir,
      },
    );
    expect(ok.checksum.value).toBe(srv.sha256);
  });

  it("refuses to replace a cached base when the catalogue's checksum changed (the VMs' disks would change)", async () => {
    const first = await pullImage(entry(), { cacheDir });
    const before = readFileSync(first.path);
    const e = await caught(
      pullImage(entry({ checksumUrl: undefined, checksumType: undefined, sha256: "cd".repeat(32) }), {
        cacheDir,
      }),
    );
    expect(e).toBeInstanceOf(InputError);
    expect(e?.message).toMatch(
      /image "test-img" is already cached with other content .*image delete test-img/,
    );
    expect(readFileSync(first.path).equals(before)).toBe(true);
    expect(srv.requests.filter((q) => q.url === "/img.qcow2")).toHaveLength(1); // nothing downloaded again
  });

  it("says which URL answered 404 and which could not be reached", async () => {
    const e404 = await caught(
      pullImage(entry({ url: `${srv.base}/nope.qcow2`, checksumName: "img.qcow2" }), { cacheDir }),
    );
    expect(e404?.message).toBe(`${srv.base}/nope.qcow2 answered HTTP 404 Not Found`);
    const sums404 = await caught(
      pullImage(entry({ checksumUrl: `${srv.base}/missing/SHA256SUMS` }), { cacheDir }),
    );
    expect(sums404?.message).toMatch(/missing\/SHA256SUMS answered HTTP 404/);
    const port = await closedPort();
    const refused = await caught(
      pullImage(
        entry({ url: `http://127.0.0.1:${port}/x.qcow2`, checksumUrl: `http://127.0.0.1:${port}/SUMS` }),
        {
          cacheDir,
        },
      ),
    );
    expect((refused as ImageError).code).toBe("unreachable");
    expect(refused?.message).toBe(`cannot reach http://127.0.0.1:${port}/SUMS: ECONNREFUSED`);
  });

  it("says when the checksum file does not list the image", async () => {
    const err = await caught(pullImage(entry({ checksumName: "other-name.qcow2" }), { cacheDir }));
    expect((err as ImageError).code).toBe("checksum-missing");
    expect(err?.message).toMatch(/SHA256SUMS lists no sha256 for other-name\.qcow2/);
  });
});

describe("importImage", () => {
  const work = mkdtempSync(path.join(tmpdir(), "kvmstrap-import-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("copies a real qcow2 in, read-only, with its sha256 and virtual size", async () => {
    const f = path.join(work, "disk.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", f, "64M"]);
    const r = await importImage(f, "my-disk", { cacheDir });
    expect(r.format).toBe("qcow2");
    expect(r.virtualSize).toBe(64 * 1024 * 1024);
    expect(r.path).toBe(path.join(cacheDir, "my-disk.qcow2"));
    expect(statSync(r.path).mode & 0o777).toBe(0o444);
    expect(statSync(f).mode & 0o777).not.toBe(0o444); // a copy, not the operator's file
    const sha = execFileSync("sha256sum", [r.path]).toString().split(" ")[0];
    expect(r.checksum).toEqual({ type: "sha256", value: sha });
    expect((await listImages(cacheDir)).map((i) => i.name)).toEqual(["my-disk"]);
  });

  it("refuses a corrupt qcow2 (unreadable header; failing qemu-img check) and a backing file", async () => {
    const good = path.join(work, "good.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", good, "64M"]);
    const bad = readFileSync(good);
    bad.writeUInt32BE(99, 4); // qcow2 version 99
    writeFileSync(path.join(work, "v99.qcow2"), bad);
    const e1 = await caught(importImage(path.join(work, "v99.qcow2"), "v99", { cacheDir }));
    expect(e1).toBeInstanceOf(InputError);
    expect(e1?.message).toMatch(/v99\.qcow2: not a disk image qemu-img can read: .*version 99/);
    writeFileSync(path.join(work, "short.qcow2"), readFileSync(good).subarray(0, 200));
    const e2 = await caught(importImage(path.join(work, "short.qcow2"), "short", { cacheDir }));
    expect(e2?.message).toMatch(/short\.qcow2: qemu-img check reports a corrupt image/);
    const overlay = path.join(work, "overlay.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", "-b", good, "-F", "qcow2", overlay]);
    const e3 = await caught(importImage(overlay, "overlay", { cacheDir }));
    expect(e3?.message).toMatch(/has a backing file/);
    const e4 = await caught(importImage(path.join(work, "nonexistent"), "x", { cacheDir }));
    expect(e4?.message).toMatch(/not a readable regular file/);
    const e5 = await caught(importImage(good, "Bad Name", { cacheDir }));
    expect(e5).toBeInstanceOf(InputError);
    expect(readdirSync(cacheDir)).toEqual([]);
  });

  it("refuses other bytes under a taken name and keeps the cached base byte for byte; the same bytes are a no-op", async () => {
    const a = path.join(work, "a.qcow2");
    const b = path.join(work, "b.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", a, "64M"]);
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", b, "128M"]);
    const first = await importImage(a, "base", { cacheDir });
    const before = readFileSync(first.path);
    const e = await caught(importImage(b, "base", { cacheDir }));
    expect(e).toBeInstanceOf(InputError);
    expect(e?.message).toMatch(/image "base" is already cached with other content .*b\.qcow2 differs/);
    expect(readFileSync(first.path).equals(before)).toBe(true);
    expect((await listImages(cacheDir)).map((i) => [i.name, i.virtualSize])).toEqual([
      ["base", 64 * 2 ** 20],
    ]);
    const again = await importImage(a, "base", { cacheDir });
    expect(again.cached).toBe(true);
    expect(again.checksum).toEqual(first.checksum);
    expect(readdirSync(cacheDir).sort()).toEqual(["base.qcow2", "index.json"]);
  });

  it("refuses a raw file that is not a disk (random bytes, zeros, odd size); accepts MBR, GPT and a bare filesystem", async () => {
    const mib = 1024 * 1024;
    const random = path.join(work, "random.img");
    writeFileSync(random, randomBytes(4 * mib));
    const e1 = await caught(importImage(random, "random", { cacheDir }));
    expect(e1).toBeInstanceOf(InputError);
    expect(e1?.message).toMatch(/random\.img: not a disk image: .*no partition table .*and no filesystem/);
    const zeros = path.join(work, "zeros.img");
    writeFileSync(zeros, Buffer.alloc(4 * mib));
    expect((await caught(importImage(zeros, "zeros", { cacheDir })))?.message).toMatch(/not a disk image/);
    const odd = path.join(work, "odd.img");
    writeFileSync(odd, Buffer.alloc(4 * mib + 7));
    expect((await caught(importImage(odd, "odd", { cacheDir })))?.message).toMatch(/512-byte sectors/);
    expect(await listImages(cacheDir)).toEqual([]);

    for (const label of ["dos", "gpt"]) {
      const f = path.join(work, `${label}.img`);
      writeFileSync(f, Buffer.alloc(8 * mib));
      execFileSync("sfdisk", ["-q", f], { input: `label: ${label}\n,,L\n` });
      expect((await importImage(f, `part-${label}`, { cacheDir })).format).toBe("raw");
    }
    const fs = path.join(work, "ext4.img");
    writeFileSync(fs, Buffer.alloc(8 * mib));
    execFileSync("mke2fs", ["-q", "-F", "-t", "ext4", fs]);
    expect((await importImage(fs, "bare-ext4", { cacheDir })).format).toBe("raw");
    expect((await listImages(cacheDir)).map((i) => i.name)).toEqual(["bare-ext4", "part-dos", "part-gpt"]);
  });
});

describe("deleteImage", () => {
  const work = mkdtempSync(path.join(tmpdir(), "kvmstrap-delete-"));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it("refuses a base a VM uses, naming the VM; deletes it once no VM does", async () => {
    const f = path.join(work, "disk.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", f, "64M"]);
    const img = await importImage(f, "golden", { cacheDir });
    const vmDir = path.join(work, "vms");
    const record = (name: string, base: string) => ({
      version: 1 as const,
      name,
      specHash: "x",
      base,
      baseFormat: "qcow2" as const,
      overlay: path.join(vmDir, name, "disk.qcow2"),
      seed: path.join(vmDir, name, "seed.iso"),
      serialLog: path.join(vmDir, name, "serial.log"),
      instanceId: "i",
      domainType: "qemu" as const,
      created: new Date().toISOString(),
    });
    for (const [name, base] of [
      ["web", img.path],
      ["db", "golden"], // a record may name its base by its cached name
      ["other", "/elsewhere.qcow2"],
    ] as const) {
      mkdirSync(path.join(vmDir, name), { recursive: true });
      await writeRecord(vmDir, record(name, base));
    }
    expect((await imageUsers(img.path, { vmDir, name: "golden" })).map((u) => u.vm)).toEqual(["db", "web"]);
    const e = await caught(deleteImage("golden", { cacheDir, vmDir }));
    expect(e).toBeInstanceOf(InputError);
    expect(e?.message).toBe(
      'image "golden" is the base of 2 VM(s): db (kvmstrap record), web (kvmstrap record); delete those VMs first (kvmstrap vm delete NAME)',
    );
    expect(existsSync(img.path)).toBe(true);
    rmSync(path.join(vmDir, "web"), { recursive: true });
    rmSync(path.join(vmDir, "db"), { recursive: true });
    const gone = await deleteImage("golden", { cacheDir, vmDir });
    expect(gone.path).toBe(img.path);
    expect(existsSync(img.path)).toBe(false);
    expect(await listImages(cacheDir)).toEqual([]);
    expect((await caught(deleteImage("golden", { cacheDir, vmDir })))?.message).toMatch(
      /image "golden" is not in the cache/,
    );
  });
});
