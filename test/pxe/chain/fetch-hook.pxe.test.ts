// The initrd's fetch= with retries and a sha256 check (iso-build/initramfs/.../9991-kvmstrap-fetch.sh),
// run as it ships: the built initrd is unpacked, and its own busybox runs live-boot's own loader
// (/bin/live-boot sources every /lib/live/boot component, ours last) in a chroot with a private
// mount namespace, against a real HTTP server that fails, truncates or serves the wrong bytes.
import { spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureNetboot, extractInitrd, NETBOOT } from "./netboot.js";

const why =
  process.getuid?.() !== 0
    ? "needs root (chroot, mount namespace)"
    : spawnSync("sh", ["-c", "command -v unshare && command -v chroot"]).status !== 0
      ? "unshare or chroot missing"
      : undefined;

const SQUASHFS = randomBytes(300_000);
const SHA = createHash("sha256").update(SQUASHFS).digest("hex");
let root = "";
let server: Server;
let base = "";
let mode: { failFirst: number; truncate: boolean; wrong: boolean } = {
  failFirst: 0,
  truncate: false,
  wrong: false,
};
let requests = 0;
let missing: string | undefined;

beforeAll(async () => {
  if (why) return;
  missing = await ensureNetboot();
  if (missing) return;
  root = await mkdtemp(path.join(tmpdir(), `kvms-initrd-${process.pid}-`));
  await extractInitrd(path.join(NETBOOT, "initrd.img"), root);
  server = createServer((_req, res) => {
    requests++;
    if (requests <= mode.failFirst) {
      res.statusCode = 503;
      res.end("not yet");
      return;
    }
    const body = mode.wrong ? Buffer.from(SQUASHFS).fill(7, 0, 10) : SQUASHFS;
    res.setHeader("content-length", String(body.length));
    if (mode.truncate) {
      res.write(body.subarray(0, 1000));
      res.destroy(); // the connection drops mid-file
    } else res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 1_800_000);
afterAll(async () => {
  if (server) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  if (root) await rm(root, { recursive: true, force: true });
});

/** do_httpmount as live-boot calls it, with `cmdline` as the kernel command line. */
async function fetchAs(cmdline: string): Promise<{ out: string; rc: number }> {
  requests = 0;
  await writeFile(path.join(root, "cmdline"), `${cmdline}\n`);
  const script = `. /bin/live-boot
FETCH=${base}/filesystem.squashfs
do_httpmount; rc=$?
if [ $rc = 0 ]; then echo "MOUNTED-SHA=$(sha256sum /run/live/medium/live/filesystem.squashfs | cut -d ' ' -f 1)"; fi
echo "RC=$rc"`;
  const child = spawn(
    "unshare",
    ["-m", "--propagation", "private", "chroot", root, "/bin/sh", "-c", script],
    {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", KVMSTRAP_CMDLINE_FILE: "/cmdline" },
    },
  );
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  child.stderr.on("data", (d) => {
    out += d;
  });
  await new Promise((r) => child.on("close", r));
  return { out, rc: Number(/RC=(\d+)/.exec(out)?.[1] ?? -1) };
}

const lines = (out: string) => out.split("\n").filter((l) => l.startsWith("KVMSTRAP-FETCH:"));

describe.skipIf(why)(`the initrd's fetch= (retries, sha256)${why ? ` (skipped: ${why})` : ""}`, () => {
  it("retries a server that is not ready yet, with backoff, and mounts only the checked file", async (ctx) => {
    if (missing) ctx.skip(missing);
    mode = { failFirst: 2, truncate: false, wrong: false };
    const t = Date.now();
    const { out, rc } = await fetchAs(`boot=live quiet kvmstrap.fetch-sha256=${SHA.toUpperCase()}`);
    expect(rc, out).toBe(0);
    expect(requests).toBe(3);
    expect(Date.now() - t).toBeGreaterThanOrEqual(6000); // waits of 2 s and 4 s
    expect(lines(out)).toEqual([
      `KVMSTRAP-FETCH: fetching ${base}/filesystem.squashfs (attempt 1/6)`,
      expect.stringMatching(/^KVMSTRAP-FETCH: attempt 1\/6 failed: .*503/),
      `KVMSTRAP-FETCH: fetching ${base}/filesystem.squashfs (attempt 2/6)`,
      expect.stringMatching(/^KVMSTRAP-FETCH: attempt 2\/6 failed: .*503/),
      `KVMSTRAP-FETCH: fetching ${base}/filesystem.squashfs (attempt 3/6)`,
      `KVMSTRAP-FETCH: fetched ${SQUASHFS.length} bytes, sha256 ${SHA} as kvmstrap.fetch-sha256= says`,
    ]);
    expect(out).toContain(`MOUNTED-SHA=${SHA}`);
  }, 60_000);

  it("a connection dropped mid-file is retried and, when it never heals, fails with a clear message", async (ctx) => {
    if (missing) ctx.skip(missing);
    mode = { failFirst: 0, truncate: true, wrong: false };
    const { out, rc } = await fetchAs(`boot=live kvmstrap.fetch-sha256=${SHA} kvmstrap.fetch-attempts=2`);
    expect(rc, out).toBe(1);
    expect(requests).toBe(2);
    expect(lines(out).at(-1)).toBe(
      `KVMSTRAP-FETCH: FAILED: ${base}/filesystem.squashfs was not fetched intact in 2 attempts; check that the boot server is up and serves the file of its SHA256SUMS`,
    );
  }, 60_000);

  it("the wrong bytes are refused by their sha256, never mounted", async (ctx) => {
    if (missing) ctx.skip(missing);
    mode = { failFirst: 0, truncate: false, wrong: true };
    const { out, rc } = await fetchAs(`kvmstrap.fetch-sha256=${SHA} kvmstrap.fetch-attempts=1`);
    expect(rc, out).toBe(1);
    expect(lines(out)).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `attempt 1/1 failed: sha256 [0-9a-f]{64} is not kvmstrap.fetch-sha256=${SHA} \\(a truncated or wrong file\\)`,
        ),
      ),
    );
    expect(out).not.toContain("MOUNTED-SHA");
  }, 60_000);

  it("without kvmstrap.fetch-sha256= the file is taken as fetched (and said so)", async (ctx) => {
    if (missing) ctx.skip(missing);
    mode = { failFirst: 0, truncate: false, wrong: false };
    const { out, rc } = await fetchAs("boot=live");
    expect(rc, out).toBe(0);
    expect(lines(out).at(-1)).toBe(
      `KVMSTRAP-FETCH: fetched ${SQUASHFS.length} bytes (no kvmstrap.fetch-sha256= to check them against)`,
    );
  }, 60_000);
});
