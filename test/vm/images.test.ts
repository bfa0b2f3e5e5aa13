// The image cache against a real HTTP server on 127.0.0.1 and real qemu-img.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/cli/errors.js";
import type { CatalogueEntry } from "../../src/vm/catalogue.js";
import { ImageError, importImage, listImages, type PullProgress, pullImage } from "../../src/vm/images.js";
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
});
