// `kvmstrap serve --rack-bandwidth RATE` as the real CLI, fetched by the real curl: a 2 MiB squashfs
// under a 1M cap (1,000,000 bytes/s, a 250 kB burst) takes about 1.85 s, two downloads at once
// share the one bucket, an ISO under --files pays too; HEAD, 304 and a small range are not slowed,
// and the same set without the option is fast. Only lower bounds hold the cap (the machine is
// shared: slower is always possible, faster than the cap is the bug); curl's own time_total is
// measured, not the process start.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freeTcp } from "../../helpers/free-port.js";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { curl, makeNetboot, sha256, tempDir } from "./helpers.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const MiB = 1024 * 1024;
const tmp = tempDir("rack-bw");
const netboot = path.join(tmp.dir, "netboot");
const files = path.join(tmp.dir, "files");
const children: ChildProcess[] = [];
let capped = "";
let open = "";
let set: ReturnType<typeof makeNetboot>;

async function serve(extra: string[]): Promise<string> {
  const port = await freeTcp();
  const child = spawn(process.execPath, [
    bin,
    "serve",
    ...["--dhcp", "off", "--listen", "127.0.0.1", "--tftp-port", "0", "--http-port", String(port)],
    ...["--netboot", netboot, "--ipxe-dir", path.join(tmp.dir, "ipxe"), "--files", files],
    ...["--state-dir", path.join(tmp.dir, `state-${port}`), "--json", ...extra],
  ]);
  children.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const until = Date.now() + 60_000;
  while (!out.includes('"listening"')) {
    if (Date.now() > until || child.exitCode !== null) throw new Error(`serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return `http://127.0.0.1:${port}`;
}

/** curl's own transfer time (s) and the body's sha256. */
async function timed(
  url: string,
  args: string[] = [],
): Promise<{ seconds: number; sha: string; status: number }> {
  const out = path.join(tmp.dir, `dl-${Math.random().toString(36).slice(2)}`);
  const r = await execa("curl", ["-sS", "-o", out, "-w", "%{http_code} %{time_total}", ...args, url], {
    timeout: 30_000,
  });
  const [status, seconds] = r.stdout.split(" ");
  return { status: Number(status), seconds: Number(seconds), sha: sha256(readFileSync(out)) };
}

beforeAll(async () => {
  set = makeNetboot(netboot, { vmlinuz: 70_000, initrd: MiB, squashfs: 2 * MiB });
  mkdirSync(path.join(tmp.dir, "ipxe"));
  mkdirSync(files);
  writeFileSync(path.join(files, "installer.iso"), Buffer.alloc(2 * MiB, 3));
  [capped, open] = await Promise.all([serve(["--rack-bandwidth", "1M"]), serve([])]);
}, 120_000);
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  tmp.remove();
});

describe("serve --rack-bandwidth: the rack's artifact bytes through one bucket", () => {
  it("a 2 MiB squashfs under 1M takes about 2 s, intact; without the option it is fast", async () => {
    const slow = await timed(`${capped}/netboot/filesystem.squashfs`);
    expect(slow.status).toBe(200);
    expect(slow.sha).toBe(sha256(set.files["filesystem.squashfs"] as Buffer));
    expect(slow.seconds).toBeGreaterThanOrEqual(1.5);
    expect(slow.seconds).toBeLessThan(30);
    const fast = await timed(`${open}/netboot/filesystem.squashfs`);
    expect(fast.sha).toBe(slow.sha);
    expect(fast.seconds).toBeLessThan(1.5);
  }, 60_000);

  it("two downloads at once share the rack's bucket (1 MiB each: about 2 s for both)", async () => {
    const started = Date.now();
    const [a, b] = await Promise.all([
      timed(`${capped}/netboot/initrd.img`),
      timed(`${capped}/netboot/initrd.img`),
    ]);
    expect(a.sha).toBe(sha256(set.files["initrd.img"] as Buffer));
    expect(b.sha).toBe(a.sha);
    expect(Math.max(a.seconds, b.seconds)).toBeGreaterThanOrEqual(1.5);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  }, 60_000);

  it("an ISO under --files pays the cap too", async () => {
    const iso = await timed(`${capped}/files/installer.iso`);
    expect(iso.status).toBe(200);
    expect(iso.sha).toBe(sha256(Buffer.alloc(2 * MiB, 3)));
    expect(iso.seconds).toBeGreaterThanOrEqual(1.5);
  }, 60_000);

  it("HEAD, 304 and ranges keep their answers under the cap", async () => {
    const url = `${capped}/netboot/filesystem.squashfs`;
    const head = await curl(tmp.dir, url, ["-I"]);
    expect(head.status).toBe(200);
    expect(head.headers["content-length"]).toBe(String(2 * MiB));
    const etag = head.headers.etag as string;
    expect(etag).toBe(`"${sha256(set.files["filesystem.squashfs"] as Buffer)}"`);
    const hit = await curl(tmp.dir, url, ["-H", `If-None-Match: ${etag}`]);
    expect(hit.status).toBe(304);
    const part = await curl(tmp.dir, url, ["-r", "1000-1999"]);
    expect(part.status).toBe(206);
    expect(part.headers["content-range"]).toBe(`bytes 1000-1999/${2 * MiB}`);
    expect(part.body.equals((set.files["filesystem.squashfs"] as Buffer).subarray(1000, 2000))).toBe(true);
    const past = await curl(tmp.dir, url, ["-r", `${3 * MiB}-`]);
    expect(past.status).toBe(416);
  }, 60_000);

  it("a bad RATE is a usage error (exit 2) naming the option", async () => {
    for (const bad of ["fast", "10x", "0", "999"]) {
      const r = await execa(process.execPath, [bin, "serve", "--rack-bandwidth", bad], { reject: false });
      expect(r.exitCode, bad).toBe(2);
      expect(r.stderr.split("\n")[0]).toMatch(/^kvmstrap: --rack-bandwidth .*: expected bytes per second/);
    }
  });
});
