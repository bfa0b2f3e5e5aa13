// `kvmstrap vm snapshot|backup|restore`: usage and input errors exit 2 with one line naming what is
// wrong, before libvirt is asked anything (the URI below has no daemon behind it). What they do on a
// real libvirtd is tested in test/e2e/backup.e2e.test.ts.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { vmCommand } from "../../src/cli/vm-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const NOWHERE = "qemu+unix:///system?socket=/nonexistent/kvmstrap-test-sock";
const vm = (...args: string[]) => captureCli(() => vmCommand([...args, "--connect", NOWHERE]));
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe("vm snapshot, backup and restore: bad input", () => {
  it("a missing snapshot name, an unknown verb, a bad name: exit 2 naming it", async () => {
    expect(await vm("snapshot", "revert", "web")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("vm snapshot revert needs a snapshot name"),
    });
    expect(await vm("snapshot", "undo", "web", "s1")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('unknown vm snapshot verb "undo"'),
    });
    expect(await vm("snapshot", "create", "web", "../x")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('snapshot name "../x"'),
    });
  });
  it("backup without --to, --full-every without --incremental, --keep 0: exit 2", async () => {
    expect(await vm("backup", "web")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("vm backup needs --to DIR"),
    });
    expect(await vm("backup", "web", "--to", "/b", "--full-every", "3")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--full-every applies to --incremental"),
    });
    expect(await vm("backup", "web", "--to", "/b", "--keep", "0")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("--keep must be a whole number of at least 1"),
    });
  });
  it("restore: neither or both of --name and --replace; no chain; a broken manifest names the file", async () => {
    expect(await vm("restore", "/b")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("exactly one of --name NEW or --replace"),
    });
    expect(await vm("restore", "/b", "--name", "x", "--replace")).toMatchObject({ code: 2 });
    const d = await mkdtemp(path.join(tmpdir(), "kvmstrap-restore-"));
    dirs.push(d);
    expect(await vm("restore", d, "--name", "x")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(`${d}: no backup chain here`),
    });
    await mkdir(path.join(d, "chain-20261206T090000Z"));
    await writeFile(
      path.join(d, "chain-20261206T090000Z", "manifest.json"),
      '{"format":"kvmstrap-backup/1","vm":"web","domainXml":"domain.xml","entries":[]}',
    );
    const r = await vm("restore", d, "--name", "x");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${d}/chain-20261206T090000Z/manifest.json: the chain has no backups`);
  });
  it("a libvirtd that is not there: exit 1 with libvirt's reason", async () => {
    const r = await vm("snapshot", "list", "web");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^kvmstrap: libvirt: /);
  });
});
