// `kvmstrap image` in process: help, pull (--json and progress lines), list, import, and the one-line
// errors with their exit codes.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatProgress, IMAGE_HELP, imageCommand, progressPrinter } from "../../src/cli/image-command.js";
import { captureCli } from "../helpers/capture-cli.js";
import { type ImageServer, startImageServer } from "./image-server.js";

let srv: ImageServer;
let catalogue: string;
beforeAll(async () => {
  srv = await startImageServer(4 * 1024 * 1024);
  catalogue = mkdtempSync(path.join(tmpdir(), "kvmstrap-cat-"));
  const entry = (name: string, sums: string) =>
    [
      `name: ${name}`,
      "os: test",
      'version: "1"',
      "arch: x86_64",
      `url: ${srv.base}${sums.replace("SHA256SUMS", "img.qcow2")}`,
      `checksumUrl: ${srv.base}${sums}`,
      "checksumType: sha256",
      "defaultUser: debian",
      "osinfo: debian12",
      "format: qcow2",
      "",
    ].join("\n");
  writeFileSync(path.join(catalogue, "local.yaml"), entry("local", "/SHA256SUMS"));
  writeFileSync(path.join(catalogue, "tampered.yaml"), entry("tampered", "/bad/SHA256SUMS"));
});
afterAll(() => srv.close());

const cli = (args: string[]) => captureCli(() => imageCommand(args));

describe("kvmstrap image", () => {
  it("prints help", async () => {
    const r = await cli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(IMAGE_HELP);
    expect(IMAGE_HELP).toMatch(/pull NAME/);
    expect(IMAGE_HELP).toMatch(/import FILE/);
  });

  it("pulls with one progress line per 10 % off a TTY, --json result, then lists it", async () => {
    const cache = mkdtempSync(path.join(tmpdir(), "kvmstrap-cache-"));
    const r = await cli(["pull", "local", "--catalogue", catalogue, "--cache", cache, "--json"]);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result).toMatchObject({
      name: "local",
      format: "qcow2",
      cached: false,
      checksum: { value: srv.sha256 },
    });
    const lines = r.stderr.split("\n").filter((l) => l.startsWith("local "));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThanOrEqual(11);
    expect(lines.at(-1)).toMatch(/^local 100% \[#{20}\] 4\.2\/4\.2 MB {2}[\d.]+ MB\/s {2}ETA 0:00$/);
    expect(r.stderr).toMatch(/local: verifying checksum/);
    const list = await cli(["list", "--cache", cache, "--json"]);
    expect(JSON.parse(list.stdout).map((i: { name: string }) => i.name)).toEqual(["local"]);
    const table = await cli(["list", "--cache", cache]);
    expect(table.stdout).toMatch(/^NAME\s+FORMAT\s+SIZE\s+VIRTUAL\s+CHECKSUM\nlocal\s+qcow2\s+0\.00 GiB/);
  });

  it("imports a qcow2 made by qemu-img", async () => {
    const cache = mkdtempSync(path.join(tmpdir(), "kvmstrap-cache-"));
    const f = path.join(mkdtempSync(path.join(tmpdir(), "kvmstrap-disk-")), "disk.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", f, "1G"]);
    const r = await cli(["import", f, "--name", "golden", "--cache", cache]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^golden: imported qcow2 at .*golden\.qcow2 \(sha256 [0-9a-f]{64}\)\n$/);
    expect((await cli(["list", "--cache", cache])).stdout).toMatch(/golden\s+qcow2\s+0\.00 GiB\s+1\.00 GiB/);
  });

  it("deletes an unused image; refuses one a VM uses (exit 2, naming the VM) and a second import of other bytes", async () => {
    const cache = mkdtempSync(path.join(tmpdir(), "kvmstrap-cache-"));
    const work = mkdtempSync(path.join(tmpdir(), "kvmstrap-disk-"));
    const f = path.join(work, "disk.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", f, "64M"]);
    const connect = `qemu+unix:///system?socket=${work}/no-such-sock`;
    expect((await cli(["import", f, "--name", "golden", "--cache", cache, "--connect", connect])).code).toBe(
      0,
    );
    const same = await cli(["import", f, "--name", "golden", "--cache", cache, "--connect", connect]);
    expect(same.stdout).toMatch(/^golden: already cached with the same content at /);
    const other = path.join(work, "other.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", other, "128M"]);
    const taken = await cli(["import", other, "--name", "golden", "--cache", cache, "--connect", connect]);
    expect(taken.code).toBe(2);
    expect(taken.stderr).toMatch(/^kvmstrap: image "golden" is already cached with other content/);
    const vmDir = path.join(work, "vms");
    mkdirSync(path.join(vmDir, "web"), { recursive: true });
    writeFileSync(
      path.join(vmDir, "web", "vm.json"),
      JSON.stringify({ version: 1, name: "web", base: path.join(cache, "golden.qcow2") }),
    );
    const del = ["delete", "golden", "--cache", cache, "--vm-dir", vmDir, "--connect", connect];
    const refused = await cli(del);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /note: libvirt .* not reachable .*only kvmstrap's VM records were checked/,
    );
    expect(refused.stderr).toMatch(
      /kvmstrap: image "golden" is the base of 1 VM\(s\): web \(kvmstrap record\)/,
    );
    rmSync(path.join(vmDir, "web"), { recursive: true });
    const ok = await cli(del);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe(`golden: deleted ${path.join(cache, "golden.qcow2")}\n`);
    expect((await cli(["list", "--cache", cache])).stdout).toBe("no cached images\n");
  });

  it("fails with one clear line: unknown image (exit 2), mismatch (exit 1), usage (exit 2)", async () => {
    const cache = mkdtempSync(path.join(tmpdir(), "kvmstrap-cache-"));
    const unknown = await cli(["pull", "nope", "--catalogue", catalogue, "--cache", cache]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('kvmstrap: unknown image "nope"; the catalogue has: local, tampered\n');
    const bad = await cli(["pull", "tampered", "--catalogue", catalogue, "--cache", cache]);
    expect(bad.code).toBe(1);
    const last = bad.stderr.trim().split("\n").at(-1);
    expect(last).toMatch(
      /^kvmstrap: checksum mismatch for tampered: expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}$/,
    );
    const usage = await cli(["frob"]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^kvmstrap: unknown image subcommand "frob"/);
    expect((await cli(["import", "x"])).stderr).toMatch(/needs --name/);
  });

  it("formats a progress line with percent, MB/s and ETA", () => {
    expect(
      formatProgress({
        name: "debian-12",
        phase: "download",
        received: 312.4e6,
        total: 694.1e6,
        resumedFrom: 0,
        bytesPerSecond: 12.3e6,
        etaSeconds: 31,
      }),
    ).toBe("debian-12  45% [#########...........] 312.4/694.1 MB  12.3 MB/s  ETA 0:31");
  });

  it("redraws one line on a TTY and ends it before verifying", () => {
    let out = "";
    const print = progressPrinter({ isTTY: true, write: (t: string) => (out += t) });
    const p = { name: "x", resumedFrom: 0, total: 100e6, bytesPerSecond: 50e6 };
    for (const received of [10e6, 20e6, 100e6]) print({ ...p, phase: "download", received, etaSeconds: 1 });
    print({ ...p, phase: "verify", received: 100e6 });
    expect(out.split("\r").length).toBe(4);
    expect(
      out.endsWith(
        "\rx 100% [####################] 100.0/100.0 MB  50.0 MB/s  ETA 0:01\x1b[K\nx: verifying checksum\n",
      ),
    ).toBe(true);
  });
});
