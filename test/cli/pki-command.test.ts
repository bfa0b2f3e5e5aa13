// kvmstrap pki through the command function: init under a root with --json, status reading it back
// (exit 0), a removed key turning status to exit 1 naming the file, and usage errors exit 2.
import { mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pkiCommand } from "../../src/cli/pki-command.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { captureCli } from "../helpers/capture-cli.js";

const hasCerttool = (await new ExecaRunner().which("certtool")) !== null;

describe.skipIf(!hasCerttool)("kvmstrap pki", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), `kvmstrap-pki-cli-${process.pid}-`));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("init --json makes the set for the given name and address; status reads it back", async () => {
    const init = await captureCli(() =>
      pkiCommand([
        "init",
        "--root",
        root,
        "--hostname",
        "kvm1.example.net",
        "--address",
        "192.0.2.10",
        "--json",
      ]),
    );
    expect(init.code).toBe(0);
    const r = JSON.parse(init.stdout);
    expect(r.action).toBe("created");
    const vnc = r.status.certs.find(
      (c: { path: string }) => c.path === "/etc/pki/libvirt-vnc/server-cert.pem",
    );
    expect(vnc.sans).toEqual(expect.arrayContaining(["DNS:kvm1", "DNS:kvm1.example.net", "IP:192.0.2.10"]));
    const status = await captureCli(() => pkiCommand(["status", "--root", root]));
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/pki: complete; first expiry \d{4}-\d\d-\d\d/);
    expect(status.stdout).toMatch(
      /ok {3}\/etc\/pki\/libvirt-spice\/server-cert.pem\n.*CN=kvm1.*\n\s+expires \d{4}-\d\d-\d\d \(\d+ days\)/,
    );
  });

  it("status exits 1 and names a missing key", async () => {
    await rm(path.join(root, "etc/pki/libvirt-vnc/server-key.pem"));
    const status = await captureCli(() => pkiCommand(["status", "--root", root]));
    expect(status.code).toBe(1);
    expect(status.stdout).toContain("MISSING /etc/pki/libvirt-vnc/server-key.pem");
    const repaired = await captureCli(() => pkiCommand(["init", "--root", root, "--hostname", "kvm1"]));
    expect(repaired.code).toBe(0);
    expect(repaired.stdout).toContain("pki: created");
  });

  it("usage errors exit 2", async () => {
    expect((await captureCli(() => pkiCommand(["bogus"]))).code).toBe(2);
    expect((await captureCli(() => pkiCommand(["init", "--ca", "--root", root]))).code).toBe(2);
    const bad = await captureCli(() => pkiCommand(["init", "--root", root, "--server-days", "0"]));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--server-days 0");
  });

  it("the VNC and SPICE server keys belong to the user qemu runs as (0600), the others to root", async () => {
    const other = await mkdtemp(path.join(tmpdir(), `kvmstrap-pki-owner-${process.pid}-`));
    try {
      await mkdir(path.join(other, "etc/libvirt"), { recursive: true });
      await writeFile(
        path.join(other, "etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nlibvirt-qemu:x:64055:108::/var/lib/libvirt:/usr/sbin/nologin\n",
      );
      const r = await captureCli(() => pkiCommand(["init", "--root", other, "--hostname", "kvm1"]));
      expect(r.code).toBe(0);
      for (const key of ["etc/pki/libvirt-vnc/server-key.pem", "etc/pki/libvirt-spice/server-key.pem"]) {
        const st = await stat(path.join(other, key));
        expect([st.uid, st.gid, st.mode & 0o777], key).toEqual([64055, 108, 0o600]);
      }
      expect((await stat(path.join(other, "etc/pki/libvirt/private/serverkey.pem"))).uid).toBe(
        process.getuid?.(),
      );
      // qemu.conf running qemu as root: nothing to hand over.
      await writeFile(path.join(other, "etc/libvirt/qemu.conf"), 'user = "root"\n');
      await rm(path.join(other, "etc/pki/libvirt-vnc/server-key.pem"));
      expect((await captureCli(() => pkiCommand(["init", "--root", other, "--hostname", "kvm1"]))).code).toBe(
        0,
      );
      expect((await stat(path.join(other, "etc/pki/libvirt-vnc/server-key.pem"))).uid).toBe(
        process.getuid?.(),
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
