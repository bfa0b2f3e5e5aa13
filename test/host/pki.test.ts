// The per-host PKI with the real certtool: made under a temporary root, every file read back,
// verified by OpenSSL against the CA (an independent verifier), the keys 0600, kept when complete,
// rotated with the old set kept, and a CA rotation whose trust files accept the old and new CA.
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { InputError } from "../../src/core/errors.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { CA_CERT, CA_KEY, clientDir, PREVIOUS_DIR, pkiFiles } from "../../src/host/pki/layout.js";
import { initPki, pemBlocks, pkiStatus, rotatePki } from "../../src/host/pki/pki.js";

const hasCerttool = (await new ExecaRunner().which("certtool")) !== null;
const id = { hostname: "kvm1", dnsNames: ["kvm1.example.net"], addresses: ["192.0.2.10", "2001:db8::10"] };

describe.skipIf(!hasCerttool)("per-host PKI (certtool from gnutls-bin)", () => {
  let root: string;
  const runner = new ExecaRunner();
  const real = (p: string) => path.join(root, p);
  beforeEach(async () => {
    root = await mkdtemp(path.join(tmpdir(), `kvmstrap-pki-test-${process.pid}-`));
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  const opensslVerify = (ca: string, cert: string) =>
    execa("openssl", ["verify", "-CAfile", real(ca), real(cert)], { reject: false });

  it("init makes the CA, server and client certificates in libvirt's layout, keys 0600, verified by OpenSSL", async () => {
    const r = await initPki(id, { runner, root });
    expect(r.action).toBe("created");
    expect(r.status.problems).toEqual([]);
    expect(r.status.complete).toBe(true);
    expect(r.written.sort()).toEqual(
      pkiFiles()
        .map((f) => f.path)
        .sort(),
    );
    for (const f of pkiFiles()) {
      const mode = (await stat(real(f.path))).mode & 0o777;
      expect(mode, f.path).toBe(f.holds === "key" ? 0o600 : 0o644);
    }
    for (const p of ["/etc/pki/CA/private", "/etc/pki/libvirt/private"])
      expect((await stat(real(p))).mode & 0o777, p).toBe(0o700);
    const server = new X509Certificate(await readFile(real("/etc/pki/libvirt-vnc/server-cert.pem")));
    expect(server.subjectAltName).toContain("DNS:kvm1");
    expect(server.subjectAltName).toContain("DNS:kvm1.example.net");
    expect(server.subjectAltName).toContain("IP Address:192.0.2.10");
    expect(server.checkHost("kvm1.example.net")).toBe("kvm1.example.net");
    expect(server.checkIP("192.0.2.10")).toBe("192.0.2.10");
    expect(server.keyUsage ?? []).toContain("1.3.6.1.5.5.7.3.1"); // TLS web server
    const client = new X509Certificate(await readFile(real(`${clientDir("admin")}/client-cert.pem`)));
    expect(client.keyUsage ?? []).toContain("1.3.6.1.5.5.7.3.2"); // TLS web client
    expect(client.subject).toContain("CN=admin@kvm1");
    for (const cert of [
      "/etc/pki/libvirt/servercert.pem",
      "/etc/pki/libvirt/clientcert.pem",
      "/etc/pki/libvirt-vnc/server-cert.pem",
      "/etc/pki/libvirt-spice/server-cert.pem",
      `${clientDir("admin")}/client-cert.pem`,
    ]) {
      const v = await opensslVerify(CA_CERT, cert);
      expect(v.stdout + v.stderr, cert).toContain(": OK");
    }
    // libvirtd's checks: digital signature and key encipherment on server and client certificates.
    for (const cert of ["/etc/pki/libvirt/servercert.pem", "/etc/pki/libvirt/clientcert.pem"]) {
      const info = await execa("certtool", ["-i", "--infile", real(cert)]);
      expect(info.stdout, cert).toMatch(/Key Usage \(critical\):\s+Digital signature\.\s+Key encipherment\./);
    }
    const ca = new X509Certificate(await readFile(real(CA_CERT)));
    expect(ca.ca).toBe(true);
    const caStatus = r.status.certs.find((c) => c.path === CA_CERT);
    expect(caStatus?.daysLeft).toBeGreaterThan(3600);
    expect(r.status.expires).toBe(r.status.certs.map((c) => c.notAfter).sort()[0]);
  });

  it("init keeps a complete set, and repairs a broken one with the same CA", async () => {
    const first = await initPki(id, { runner, root });
    const again = await initPki(id, { runner, root });
    expect(again.action).toBe("kept");
    expect(again.written).toEqual([]);
    await writeFile(real("/etc/pki/libvirt-spice/server-cert.pem"), "garbage\n");
    const status = await pkiStatus({ root });
    expect(status.complete).toBe(false);
    expect(status.problems.join("\n")).toContain(
      "/etc/pki/libvirt-spice/server-cert.pem: not a PEM certificate",
    );
    const repaired = await initPki(id, { runner, root });
    expect(repaired.action).toBe("created");
    expect(repaired.status.complete).toBe(true);
    const caOf = (s: typeof first.status) => s.certs.find((c) => c.path === CA_CERT)?.fingerprint256;
    expect(caOf(repaired.status)).toBe(caOf(first.status));
  });

  it("status reports a key with a wrong mode and a certificate from another CA", async () => {
    await initPki(id, { runner, root });
    const { chmod } = await import("node:fs/promises");
    await chmod(real("/etc/pki/libvirt-vnc/server-key.pem"), 0o644);
    const other = await mkdtemp(path.join(tmpdir(), `kvmstrap-pki-other-${process.pid}-`));
    try {
      await initPki(id, { runner, root: other });
      await writeFile(
        real("/etc/pki/libvirt/servercert.pem"),
        await readFile(path.join(other, "/etc/pki/libvirt/servercert.pem")),
      );
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    const s = await pkiStatus({ root });
    expect(s.complete).toBe(false);
    expect(s.problems).toContain("/etc/pki/libvirt-vnc/server-key.pem: mode 644, wanted 600");
    expect(s.problems).toContain("/etc/pki/libvirt/servercert.pem: not issued by the host's CA");
    expect(s.problems).toContain("/etc/pki/libvirt/private/serverkey.pem: not the key of its certificate");
  });

  it("rotate issues new certificates from the same CA and keeps the replaced set in previous/", async () => {
    const first = await initPki(id, { runner, root });
    const oldServer = await readFile(real("/etc/pki/libvirt-vnc/server-cert.pem"), "utf8");
    const r = await rotatePki({ ...id, addresses: ["192.0.2.11"] }, { runner, root });
    expect(r.action).toBe("rotated");
    expect(r.status.complete).toBe(true);
    const newServer = await readFile(real("/etc/pki/libvirt-vnc/server-cert.pem"), "utf8");
    expect(newServer).not.toBe(oldServer);
    expect(new X509Certificate(newServer).subjectAltName).toContain("IP Address:192.0.2.11");
    expect(await readFile(real(`${PREVIOUS_DIR}/etc/pki/libvirt-vnc/server-cert.pem`), "utf8")).toBe(
      oldServer,
    );
    expect((await stat(real(PREVIOUS_DIR))).mode & 0o777).toBe(0o700);
    expect((await stat(real(`${PREVIOUS_DIR}${CA_KEY}`))).mode & 0o777).toBe(0o600);
    const fp = (s: typeof r.status) => s.certs.find((c) => c.path === CA_CERT)?.fingerprint256;
    expect(fp(r.status)).toBe(fp(first.status));
  });

  it("a CA rotation trusts the new and the old CA until the next rotation", async () => {
    await initPki(id, { runner, root });
    const oldCa = await readFile(real(CA_CERT), "utf8");
    const oldClient = await readFile(real(`${clientDir("admin")}/client-cert.pem`), "utf8");
    const r = await rotatePki(id, { runner, root, ca: true });
    expect(r.status.complete).toBe(true);
    const trust = await readFile(real("/etc/pki/libvirt-vnc/ca-cert.pem"), "utf8");
    expect(pemBlocks(trust)).toHaveLength(2);
    expect(pemBlocks(trust)[1]).toBe(pemBlocks(oldCa)[0]);
    // A client certificate from the old CA still verifies against the trust file...
    await writeFile(real("/tmp-old-client.pem"), oldClient);
    const v = await opensslVerify("/etc/pki/libvirt-vnc/ca-cert.pem", "/tmp-old-client.pem");
    expect(v.stdout + v.stderr).toContain(": OK");
    // ...and no longer after the next rotation.
    await rotatePki(id, { runner, root, ca: true });
    const v2 = await opensslVerify("/etc/pki/libvirt-vnc/ca-cert.pem", "/tmp-old-client.pem");
    expect(v2.exitCode).not.toBe(0);
  });

  it("refuses names that are not DNS names or addresses, and rotate without a CA", async () => {
    await expect(initPki({ hostname: 'kvm1"\nca' }, { runner, root })).rejects.toThrow(InputError);
    await expect(initPki({ hostname: "kvm1", addresses: ["not-an-ip"] }, { runner, root })).rejects.toThrow(
      /address "not-an-ip": not an IPv4 or IPv6 address/,
    );
    await expect(initPki(id, { runner, root, client: "../x" })).rejects.toThrow(/client name/);
    await expect(rotatePki(id, { runner, root })).rejects.toThrow(/no usable CA .*run pki init first/);
  });
});
