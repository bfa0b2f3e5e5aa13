// Snapshot archives are untrusted input: extraction must stay bounded in time, memory and disk, and
// the temporary root must disappear on every way out, signals included (proved with a real child).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import tar from "tar-stream";
import { afterAll, describe, expect, it } from "vitest";
import { InputError } from "../../src/core/errors.js";
import { EXTRACT_LIMITS, extractSnapshot, openSnapshot } from "../../src/host/snapshot-archive.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const dirs: string[] = [];
const tmp = (tag: string) => {
  const d = mkdtempSync(path.join(tmpdir(), `kvmstrap-archive-${tag}-`));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A raw ustar header (POSIX layout), for archives whose bodies are never written out whole. */
function header(name: string, size: number, type: "file" | "directory" = "file"): Buffer {
  const h = Buffer.alloc(512);
  const field = (at: number, len: number, text: string) => h.write(text, at, len, "ascii");
  const octal = (at: number, len: number, n: number) =>
    field(at, len, `${n.toString(8).padStart(len - 1, "0")}\0`);
  field(0, 100, name);
  octal(100, 8, type === "file" ? 0o644 : 0o755);
  octal(108, 8, 0);
  octal(116, 8, 0);
  octal(124, 12, size);
  octal(136, 12, 0);
  field(148, 8, "        ");
  field(156, 1, type === "file" ? "0" : "5");
  field(257, 8, "ustar\u000000");
  let sum = 0;
  for (const b of h) sum += b;
  field(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return h;
}

async function tarGz(add: (p: ReturnType<typeof tar.pack>) => void): Promise<Buffer> {
  const pack = tar.pack();
  add(pack);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

describe("extractSnapshot", () => {
  it("refuses a 3 MB gzip bomb within seconds and without gigabytes of memory", async () => {
    // One entry that claims 6 GiB of zeros, as gzip members concatenated (gunzip reads them as one
    // stream): about 3 MB on disk, 3 GiB once unpacked.
    const zeros = gzipSync(Buffer.alloc(2 ** 20), { level: 9 });
    const parts = [gzipSync(header("./proc/cpuinfo", 6 * 2 ** 30))];
    for (let i = 0; i < 3072; i++) parts.push(zeros);
    const dir = tmp("bomb");
    const bomb = path.join(dir, "bomb.tar.gz");
    writeFileSync(bomb, Buffer.concat(parts));
    const t0 = performance.now();
    const rss0 = process.memoryUsage().rss;
    await expect(extractSnapshot(bomb, path.join(dir, "out"))).rejects.toThrow(
      /compression bomb|larger than/,
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 * 2 ** 20);
  }, 20_000);

  it("refuses an archive with more entries than the limit, and reports progress on the way", async () => {
    const n = 600;
    const body = Buffer.concat([
      ...Array.from({ length: n }, (_, i) => header(`./sys/d${i}`, 0, "directory")),
      Buffer.alloc(1024),
    ]);
    const dir = tmp("entries");
    const file = path.join(dir, "many.tar.gz");
    writeFileSync(file, gzipSync(body));
    const seen: number[] = [];
    await expect(
      extractSnapshot(file, path.join(dir, "out"), {
        limits: { entries: 500 },
        onProgress: (p) => seen.push(p.entries),
        progressEveryMs: 0,
      }),
    ).rejects.toThrow(/more than 500 entries/);
    expect(seen.length).toBeGreaterThan(0);
    expect(EXTRACT_LIMITS.entries).toBeLessThan(300_000);
  });

  it("refuses a single file over the per-file limit and a sparse file claiming an absurd size", async () => {
    const dir = tmp("big");
    const big = path.join(dir, "big.tar.gz");
    writeFileSync(big, gzipSync(Buffer.concat([header("./proc/meminfo", 2 ** 20), Buffer.alloc(2 ** 20)])));
    await expect(
      extractSnapshot(big, path.join(dir, "a"), { limits: { fileBytes: 2 ** 16 } }),
    ).rejects.toThrow(/proc\/meminfo is larger than/);
    const sparse = path.join(dir, "sparse.tar.gz");
    writeFileSync(
      sparse,
      await tarGz((p) =>
        p.entry(
          {
            name: "./dev/cpu/0/GNUSparseFile.0/msr",
            size: 512,
            pax: {
              "GNU.sparse.major": "1",
              "GNU.sparse.minor": "0",
              "GNU.sparse.name": "./dev/cpu/0/msr",
              "GNU.sparse.realsize": String(2 ** 50),
            },
          } as tar.Header,
          Buffer.concat([Buffer.from("0\n"), Buffer.alloc(510)]),
        ),
      ),
    );
    await expect(extractSnapshot(sparse, path.join(dir, "b"))).rejects.toThrow(/claims a size/);
  });
});

describe("openSnapshot", () => {
  it("says in one line why an archive is refused, and leaves no temporary root behind", async () => {
    const dir = tmp("open");
    const evil = path.join(dir, "evil.tar.gz");
    writeFileSync(
      evil,
      await tarGz((p) => p.entry({ name: "./up", type: "symlink", linkname: "../../etc" })),
    );
    const before = new Set(readdirSync(tmpdir()).filter((n) => n.startsWith("kvmstrap-snapshot-")));
    const err = await openSnapshot(evil).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(
      /^--snapshot .*evil\.tar\.gz: refused: entry \.\/up links outside/,
    );
    expect((err as Error).message).not.toContain("\n");
    const garbage = path.join(dir, "garbage.tar.gz");
    writeFileSync(garbage, "not gzip at all");
    await expect(openSnapshot(garbage)).rejects.toThrow(/not a readable snapshot/);
    await expect(openSnapshot(dir)).rejects.toThrow(/not a file/);
    await expect(openSnapshot(path.join(dir, "absent.tar.gz"))).rejects.toThrow(/no such file/);
    const left = readdirSync(tmpdir()).filter((n) => n.startsWith("kvmstrap-snapshot-") && !before.has(n));
    expect(left).toEqual([]);
  });
});

// The child runs the built module (dist/), as the shipped CLI does.
const built = path.join(projectRoot, "dist/host/snapshot-archive.js");

async function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

function exitOf(child: ChildProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(signal ?? code)));
}

describe.skipIf(!existsSync(built))("a snapshot's temporary root and signals (real child process)", () => {
  const script = (dir: string) => {
    const file = path.join(dir, "child.mjs");
    writeFileSync(
      file,
      `import { openSnapshot } from ${JSON.stringify(built)};
const { root } = await openSnapshot(process.argv[2]);
process.stdout.write(root + "\\n");
setInterval(() => {}, 1000);
`,
    );
    return file;
  };

  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    it(`removes the extracted root when ${signal} arrives while it is in use`, async () => {
      const dir = tmp(`sig-${signal}`);
      const childTmp = tmp(`sigtmp-${signal}`);
      const archive = path.join(dir, "s.tar.gz");
      writeFileSync(archive, await tarGz((p) => p.entry({ name: "./proc/cpuinfo" }, "processor : 0\n")));
      const child = spawn(process.execPath, [script(dir), archive], {
        env: { ...process.env, TMPDIR: childTmp },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout?.on("data", (c) => {
        out += c;
      });
      const exited = exitOf(child);
      await waitFor(() => out.includes("\n"), 10_000);
      const root = out.trim();
      expect(existsSync(path.join(root, "proc/cpuinfo"))).toBe(true);
      child.kill(signal);
      expect(await exited).toBe(signal);
      expect(existsSync(root)).toBe(false);
      expect(readdirSync(childTmp)).toEqual([]);
    }, 20_000);
  }

  it("removes a half-extracted root when SIGTERM arrives mid-extraction (archive on a pipe)", async () => {
    const dir = tmp("mid");
    const childTmp = tmp("midtmp");
    const fifo = path.join(dir, "s.tar.gz");
    execFileSync("mkfifo", [fifo]);
    const archive = await tarGz((p) => {
      for (let i = 0; i < 200; i++) p.entry({ name: `./sys/f${i}` }, "x".repeat(4096));
    });
    const child = spawn(process.execPath, [script(dir), fifo], {
      env: { ...process.env, TMPDIR: childTmp },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = exitOf(child);
    const writer = await open(fifo, "w");
    // Half the archive, then silence: the child is stuck mid-extraction with files on disk.
    await writer.write(archive.subarray(0, archive.length >> 1));
    await waitFor(() => {
      const made = readdirSync(childTmp);
      return made.length === 1 && existsSync(path.join(childTmp, made[0] as string, "sys/f0"));
    }, 10_000);
    child.kill("SIGTERM");
    expect(await exited).toBe("SIGTERM");
    await writer.close().catch(() => {});
    expect(readdirSync(childTmp)).toEqual([]);
  }, 20_000);
});
if (!existsSync(built)) it.skip("signal tests skipped: dist/ is not built (npm run build)", () => {});
