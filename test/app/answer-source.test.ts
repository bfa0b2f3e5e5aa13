// The appliance's answer sources with real parts: a real HTTP server on loopback (retries, the
// bearer token only for the boot server's origin, size and time bounds, sha256), real files, and a
// real ext4 filesystem with a label on a loop device (mounted read-only and unmounted again).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_ANSWER_BYTES } from "../../src/answer/load.js";
import {
  displayUrl,
  fetchAnswerUrl,
  findAnswer,
  parseAnswerLocation,
  readAnswerAt,
} from "../../src/app/answer-source.js";
import { parseKernelCmdline } from "../../src/app/node-protocol.js";

const ANSWER = "version: 1\nkvm:\n  nested: true\n";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base = "";
let handler: Handler = (_q, r) => r.end();
const seen: { url: string; auth: string | undefined }[] = [];
let scratch = "";

beforeAll(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), "kvms-answer-src-"));
  server = createServer((req, res) => {
    seen.push({ url: req.url ?? "", auth: req.headers.authorization });
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rm(scratch, { recursive: true, force: true });
});

const fast = { attempts: 3, backoffMs: 20, timeoutMs: 2000 };

describe("kvmstrap.answer= forms", () => {
  it("reads URLs, file:/// paths and labels with an optional path; refuses anything else by name", () => {
    expect(parseAnswerLocation("http://10.0.0.1:8080/v1/nodes/x/answer")).toMatchObject({ kind: "url" });
    expect(parseAnswerLocation("file:///etc/kvmstrap/a%20b.yaml")).toEqual({
      kind: "file",
      path: "/etc/kvmstrap/a b.yaml",
    });
    expect(parseAnswerLocation("label:KVMS")).toEqual({ kind: "label", label: "KVMS", path: "answer.yaml" });
    expect(parseAnswerLocation("label:KVMS/site/a.yaml")).toEqual({
      kind: "label",
      label: "KVMS",
      path: "site/a.yaml",
    });
    expect(() => parseAnswerLocation("label:KV MS")).toThrow(
      /kvmstrap.answer=label:KV MS: "KV MS" is not a filesystem label/,
    );
    expect(() => parseAnswerLocation("label:KVMS/../etc/shadow")).toThrow(
      /not a file path inside the filesystem/,
    );
    expect(() => parseAnswerLocation("ftp://x/a.yaml")).toThrow(/not an answer source/);
    expect(() => parseAnswerLocation("file://host/a.yaml")).toThrow(/file:\/\/\/absolute\/path/);
  });

  it("never shows user info or secret query values of a URL", () => {
    const u = new URL("http://user:pw@h/a.yaml?token=abc&node=1");
    expect(displayUrl(u)).toBe("http://h/a.yaml?token=[redacted]&node=1");
    expect(() => parseAnswerLocation("gopher://user:pw@h/?token=abc")).toThrow(/not an answer source/);
  });
});

describe("http(s) source against a real HTTP server", () => {
  it("retries 503s with backoff, then takes the answer; the bearer goes only to the boot server's origin", async () => {
    let n = 0;
    handler = (_q, res) => {
      n++;
      if (n < 3) {
        res.statusCode = 503;
        res.end("busy");
      } else res.end(ANSWER);
    };
    seen.length = 0;
    const retries: string[] = [];
    const url = new URL(`${base}/v1/nodes/52%3A54%3A00%3A00%3A00%3A01/answer`);
    const bytes = await fetchAnswerUrl(url, {
      ...fast,
      bearer: { origin: url.origin, token: "tok-123" },
      onRetry: (l) => retries.push(l),
    });
    expect(bytes.toString()).toBe(ANSWER);
    expect(seen.map((s) => s.auth)).toEqual(["Bearer tok-123", "Bearer tok-123", "Bearer tok-123"]);
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatch(/HTTP 503 .*attempt 1\/3; again in 20 ms/);
    expect(retries.join("\n")).not.toContain("tok-123");

    seen.length = 0;
    n = 10;
    await fetchAnswerUrl(url, { ...fast, bearer: { origin: "http://10.9.9.9:8080", token: "tok-123" } });
    expect(seen[0]?.auth).toBeUndefined();
  });

  it("a 404 is final at once and named with the source", async () => {
    handler = (_q, res) => {
      res.statusCode = 404;
      res.end();
    };
    seen.length = 0;
    await expect(fetchAnswerUrl(new URL(`${base}/missing.yaml`), fast)).rejects.toThrow(
      `answer from ${base}/missing.yaml: HTTP 404 Not Found`,
    );
    expect(seen).toHaveLength(1);
  });

  it("refuses an answer larger than the loader's limit, declared or streamed", async () => {
    const big = "#".repeat(MAX_ANSWER_BYTES + 10);
    handler = (req, res) => {
      if (req.url === "/chunked") {
        res.write(big.slice(0, 600_000));
        res.end(big.slice(600_000));
      } else res.end(big);
    };
    await expect(fetchAnswerUrl(new URL(`${base}/declared`), fast)).rejects.toThrow(
      /too large for an answer file/,
    );
    await expect(fetchAnswerUrl(new URL(`${base}/chunked`), fast)).rejects.toThrow(
      /too large for an answer file/,
    );
  });

  it("gives up after the attempts when the server never answers in time", async () => {
    handler = () => {}; // holds the request open
    const t = Date.now();
    await expect(
      fetchAnswerUrl(new URL(`${base}/slow`), { attempts: 2, backoffMs: 10, timeoutMs: 300 }),
    ).rejects.toThrow(`answer from ${base}/slow: no answer within 300 ms`);
    expect(Date.now() - t).toBeGreaterThanOrEqual(600);
    server.closeAllConnections();
  });

  it("checks kvmstrap.answer-sha256 and the schema before anyone acts on the answer", async () => {
    handler = (req, res) => res.end(req.url === "/bad.yaml" ? "version: 1\nkvm:\n  nestd: true\n" : ANSWER);
    const params = (extra: string) => parseKernelCmdline(`quiet kvmstrap.answer=${base}/a.yaml ${extra}`);
    const ok = await findAnswer(params(`kvmstrap.answer-sha256=${sha(ANSWER).toUpperCase()}`), {
      http: fast,
      embedded: null,
    });
    expect(ok).toMatchObject({
      source: `${base}/a.yaml`,
      sha256: sha(ANSWER),
      answer: { kvm: { nested: true } },
    });
    await expect(
      findAnswer(params(`kvmstrap.answer-sha256=${"0".repeat(64)}`), { http: fast, embedded: null }),
    ).rejects.toThrow(
      `answer from ${base}/a.yaml: sha256 ${sha(ANSWER)} is not the kvmstrap.answer-sha256=${"0".repeat(64)}`,
    );
    await expect(findAnswer(params("kvmstrap.answer-sha256=xyz"), { http: fast })).rejects.toThrow(
      /kvmstrap.answer-sha256=xyz: not a sha256/,
    );
    await expect(
      findAnswer(parseKernelCmdline(`kvmstrap.answer=${base}/bad.yaml`), { http: fast, embedded: null }),
    ).rejects.toThrow(
      `answer from ${base}/bad.yaml is not a valid answer file:\n${base}/bad.yaml:3:3: kvm.nestd: unknown key "nestd"; did you mean "nested"?`,
    );
  });
});

describe("file and embedded sources", () => {
  it("reads file:///path; a missing file is named; the embedded answer is used only without kvmstrap.answer=", async () => {
    const file = path.join(scratch, "answer.yaml");
    await writeFile(file, ANSWER);
    const got = await findAnswer(parseKernelCmdline(`kvmstrap.answer=file://${file}`), { embedded: null });
    expect(got?.source).toBe(`file://${file}`);
    await expect(
      findAnswer(parseKernelCmdline(`kvmstrap.answer=file://${scratch}/none.yaml`), { embedded: null }),
    ).rejects.toThrow(`answer from file://${scratch}/none.yaml: no such file`);

    const embedded = path.join(scratch, "medium/kvmstrap/answer.yaml");
    await mkdir(path.dirname(embedded), { recursive: true });
    await writeFile(embedded, "version: 1\n");
    expect((await findAnswer(new Map(), { embedded }))?.source).toBe(`the image (${embedded})`);
    // kvmstrap.answer= wins over the embedded one.
    expect((await findAnswer(parseKernelCmdline(`kvmstrap.answer=file://${file}`), { embedded }))?.text).toBe(
      ANSWER,
    );
    expect(await findAnswer(new Map(), { embedded: path.join(scratch, "no/answer.yaml") })).toBeNull();
  });

  it("refuses a directory and binary content, naming the source", async () => {
    await expect(readAnswerAt({ kind: "file", path: scratch })).rejects.toThrow(
      `answer from file://${scratch}: not a regular file`,
    );
    const bin = path.join(scratch, "bin.yaml");
    await writeFile(bin, Buffer.from([0xff, 0xfe, 0x00, 0x41]));
    await expect(readAnswerAt({ kind: "file", path: bin })).rejects.toThrow(/binary content/);
  });
});

const loopWhy =
  process.getuid?.() !== 0
    ? "needs root for losetup and mount"
    : spawnSync("sh", [
          "-c",
          "command -v losetup && command -v mkfs.ext4 && command -v blkid && test -e /dev/loop-control",
        ]).status !== 0
      ? "losetup, mkfs.ext4, blkid or /dev/loop-control missing"
      : undefined;

describe.skipIf(loopWhy)(
  `label: source on a real labelled ext4 filesystem${loopWhy ? ` (skipped: ${loopWhy})` : ""}`,
  () => {
    const label = `KVMSA${process.pid % 100000}`;
    let loop = "";
    let img = "";
    beforeAll(async () => {
      img = path.join(scratch, "label.img");
      await writeFile(img, Buffer.alloc(0));
      const sh = (cmd: string, args: string[]) => {
        const r = spawnSync(cmd, args, { encoding: "utf8" });
        if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
        return r.stdout.trim();
      };
      sh("truncate", ["-s", "8M", img]);
      // The answer is put in by mkfs itself (-d), so no write mount is needed to prepare it.
      const content = path.join(scratch, "label-content");
      await mkdir(path.join(content, "site"), { recursive: true });
      await writeFile(path.join(content, "answer.yaml"), ANSWER);
      await writeFile(path.join(content, "site/other.yaml"), "version: 1\n");
      sh("mkfs.ext4", ["-q", "-L", label, "-d", content, img]);
      loop = sh("losetup", ["-f", "--show", img]);
    });
    afterAll(() => {
      if (loop) spawnSync("losetup", ["-d", loop]);
    });

    const mounts = async () =>
      (await readFile("/proc/self/mounts", "utf8")).split("\n").filter((l) => l.includes("kvmstrap-answer-"));

    it("finds the device by label (blkid, no udev needed), mounts it read-only, reads answer.yaml, unmounts", async () => {
      const got = await findAnswer(parseKernelCmdline(`kvmstrap.answer=label:${label}`), {
        byLabelDir: path.join(scratch, "no-udev"),
        embedded: null,
      });
      expect(got).toMatchObject({ source: `label:${label}/answer.yaml`, text: ANSWER });
      expect(await mounts()).toEqual([]);
    });

    it("through udev's by-label link too, with a path inside the filesystem; a missing file still unmounts", async () => {
      const byLabel = path.join(scratch, "by-label");
      await mkdir(byLabel, { recursive: true });
      await symlink(loop, path.join(byLabel, label));
      const got = await findAnswer(parseKernelCmdline(`kvmstrap.answer=label:${label}/site/other.yaml`), {
        byLabelDir: byLabel,
      });
      expect(got?.text).toBe("version: 1\n");
      await expect(
        findAnswer(parseKernelCmdline(`kvmstrap.answer=label:${label}/nope.yaml`), { byLabelDir: byLabel }),
      ).rejects.toThrow(`answer from label:${label}/nope.yaml: no such file`);
      expect(await mounts()).toEqual([]);
    });

    it("a vfat stick (the usual second medium) too: the filesystem type is found by mount", async (ctx) => {
      if (spawnSync("sh", ["-c", "command -v mkfs.vfat && command -v mcopy"]).status !== 0) {
        ctx.skip("mkfs.vfat or mcopy (mtools) missing");
      }
      if (!/\svfat$/m.test(await readFile("/proc/filesystems", "utf8"))) {
        ctx.skip("this kernel cannot mount vfat (not in /proc/filesystems, no modules)");
      }
      const fat = path.join(scratch, "fat.img");
      const fatLabel = `KVMF${process.pid % 100000}`;
      const answerFile = path.join(scratch, "fat-answer.yaml");
      await writeFile(answerFile, ANSWER);
      const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" });
      expect(run("truncate", ["-s", "8M", fat]).status).toBe(0);
      expect(run("mkfs.vfat", ["-n", fatLabel, fat]).status).toBe(0);
      expect(run("mcopy", ["-i", fat, answerFile, "::/answer.yaml"]).status).toBe(0);
      const dev = run("losetup", ["-f", "--show", fat]).stdout.trim();
      try {
        const got = await findAnswer(parseKernelCmdline(`kvmstrap.answer=label:${fatLabel}`), {
          byLabelDir: path.join(scratch, "no-udev"),
          embedded: null,
        });
        expect(got).toMatchObject({ source: `label:${fatLabel}/answer.yaml`, text: ANSWER });
        expect(await mounts()).toEqual([]);
      } finally {
        run("losetup", ["-d", dev]);
      }
    });

    it("names a label no filesystem has", async () => {
      await expect(
        findAnswer(parseKernelCmdline("kvmstrap.answer=label:NOSUCHLBL9"), {
          byLabelDir: path.join(scratch, "x"),
        }),
      ).rejects.toThrow('answer from label:NOSUCHLBL9/answer.yaml: no filesystem labelled "NOSUCHLBL9"');
    });
  },
);
