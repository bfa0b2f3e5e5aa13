// Names that try to leave the served root, and the odd names real ROMs send, against a real root
// on disk with symlinks (inside and out), a directory and a FIFO.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERR } from "../../../src/pxe/tftp/packet.js";
import { type Served, serve, tftpGet } from "./helpers.js";

const boot = randomBytes(5000);
const nested = randomBytes(700);
let served: Served;
let outside: string;

beforeAll(async () => {
  served = await serve({ "boot.ipxe": boot });
  const root = served.root;
  mkdirSync(path.join(root, "sub"));
  writeFileSync(path.join(root, "sub", "file.bin"), nested);
  // Outside the root, next to it and named like it (root + "-outside"), so a bare prefix check
  // without the separator would let it through: a secret that must never be served.
  outside = `${root}-outside`;
  mkdirSync(outside, { recursive: true });
  writeFileSync(path.join(outside, "secret"), "secret");
  symlinkSync(path.join(outside, "secret"), path.join(root, "escape"));
  symlinkSync(outside, path.join(root, "escapedir"));
  symlinkSync("/etc/passwd", path.join(root, "passwd"));
  symlinkSync("boot.ipxe", path.join(root, "alias.ipxe")); // inside: allowed
  // The same escape from a subdirectory.
  symlinkSync(path.join(outside, "secret"), path.join(root, "sub", "up"));
  execFileSync("mkfifo", [path.join(root, "fifo")]);
});
afterAll(async () => {
  await served.stop();
  execFileSync("rm", ["-rf", outside]);
});

const get = (file: string | Buffer) => tftpGet({ port: served.port, file, deadlineMs: 5000 });

describe("refused with an ERROR packet", () => {
  it.each([
    ["../etc/passwd", ERR.ACCESS],
    ["sub/../../etc/passwd", ERR.ACCESS],
    ["..\\..\\x", ERR.ACCESS],
    ["\\..\\boot.ipxe", ERR.ACCESS],
    ["escape", ERR.ACCESS], // symlink to a file outside the root
    ["escapedir/secret", ERR.ACCESS], // through a symlinked directory outside the root
    ["passwd", ERR.ACCESS], // symlink to /etc/passwd
    ["sub/up", ERR.ACCESS],
    ["sub", ERR.ACCESS], // a directory
    ["fifo", ERR.ACCESS], // not a regular file, and opening it must not hang
    ["/etc/passwd", ERR.NOT_FOUND], // leading slash dropped: etc/passwd under the root
    ["missing.bin", ERR.NOT_FOUND],
  ])("%j (error %i)", async (name, code) => {
    const got = await get(name);
    expect(got.error?.code).toBe(code);
    expect(got.dataPackets).toBe(0);
    const event = await served.eventFor(name.includes("..") ? name : name.replace(/^\/+/, "") || name);
    expect(event.outcome).toBe("refused");
  });
});

describe("cleaned and served", () => {
  it.each([
    ["boot.ipxe", boot],
    ["/boot.ipxe", boot],
    ["//./boot.ipxe", boot],
    ["\\boot.ipxe", boot],
    ["sub\\file.bin", nested],
    ["alias.ipxe", boot], // symlink inside the root
  ])("%j", async (name, data) => {
    const got = await get(name);
    expect(got.error).toBeUndefined();
    expect(got.data.equals(data)).toBe(true);
  });

  it("a name with a 0xFF tail (old Intel ROMs)", async () => {
    const got = await get(Buffer.concat([Buffer.from("boot.ipxe"), Buffer.from([0xff, 0xff, 0xff, 0xff])]));
    expect(got.data.equals(boot)).toBe(true);
    const event = await served.eventFor("boot.ipxe");
    expect(event).toMatchObject({ outcome: "completed", bytes: boot.length });
  });
});
