// Issues keys and certificates with GnuTLS's certtool (Debian's gnutls-bin), the tool libvirt's
// own TLS guide uses. Node 20's crypto reads certificates (X509Certificate) but cannot issue them,
// and no npm package is needed for three templates. The CA's key is ECDSA P-256 (made in
// milliseconds); server and client keys are RSA 3072, because libvirtd refuses a certificate whose
// critical key usage lacks key encipherment, which certtool never sets on an ECDSA key.
// Everything happens in a private temporary directory (0700) that is removed on every exit; the
// caller reads the PEM text back and publishes it atomically.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { InputError } from "../../core/errors.js";
import type { CommandRunner } from "../commands.js";

export interface Pem {
  cert: string;
  key: string;
}

export interface Subject {
  /** The certificate's common name. */
  cn: string;
  organization?: string;
  /** Subject alternative names (server certificates): DNS names and IP addresses. */
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  days: number;
}

const TIMEOUT_MS = 30_000;

// certtool's template values are quoted strings; a quote or a newline in a name would end the value
// early and add a directive, so names are held to what a DN and a SAN may reasonably hold here.
const SAFE = /^[A-Za-z0-9 .:_@/()+,=-]{1,200}$/;
function quoted(what: string, v: string): string {
  if (!SAFE.test(v)) throw new InputError(`${what} "${v}": only letters, digits and .:_@/()+,=- are allowed`);
  return `"${v}"`;
}

function template(s: Subject, kind: "ca" | "server" | "client"): string {
  const lines = [`cn = ${quoted("common name", s.cn)}`];
  if (s.organization) lines.push(`organization = ${quoted("organization", s.organization)}`);
  lines.push(`expiration_days = ${Math.max(1, Math.floor(s.days))}`);
  if (kind === "ca") lines.push("ca", "cert_signing_key", "crl_signing_key");
  // encryption_key too: libvirtd refuses a server or client certificate whose (critical) key usage
  // lacks key encipherment, whatever the key type ("usage does not permit key encipherment").
  else lines.push("signing_key", "encryption_key", kind === "server" ? "tls_www_server" : "tls_www_client");
  for (const d of s.dnsNames ?? []) lines.push(`dns_name = ${quoted("DNS name", d)}`);
  for (const a of s.ipAddresses ?? []) lines.push(`ip_address = ${quoted("IP address", a)}`);
  return `${lines.join("\n")}\n`;
}

export class Certtool {
  constructor(
    private readonly runner: CommandRunner,
    private readonly program = "certtool",
  ) {}

  async available(): Promise<boolean> {
    return (await this.runner.which(this.program)) !== null;
  }

  private async run(args: string[]): Promise<void> {
    const r = await this.runner.run(this.program, args, { timeoutMs: TIMEOUT_MS });
    if (r.exitCode !== 0) {
      const why = r.timedOut ? "timed out" : (r.stderr.trim().split("\n").pop() ?? `exit ${r.exitCode}`);
      throw new Error(`certtool ${args[0]} failed: ${why}`);
    }
  }

  private async inTemp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-pki-${process.pid}-`)); // mkdtemp: 0700
    try {
      return await fn(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async newKey(dir: string, type: "ca" | "leaf"): Promise<string> {
    const key = path.join(dir, "key.pem");
    const kind =
      type === "ca" ? ["--key-type=ecdsa", "--curve=secp256r1"] : ["--key-type=rsa", "--bits=3072"];
    await this.run(["--generate-privkey", ...kind, "--outfile", key]);
    return key;
  }

  /** A self-signed CA. */
  async ca(s: Subject): Promise<Pem> {
    return this.inTemp(async (dir) => {
      const key = await this.newKey(dir, "ca");
      const tpl = path.join(dir, "ca.tpl");
      await writeFile(tpl, template(s, "ca"), { mode: 0o600 });
      const cert = path.join(dir, "cert.pem");
      await this.run(["--generate-self-signed", "--load-privkey", key, "--template", tpl, "--outfile", cert]);
      return { cert: await readFile(cert, "utf8"), key: await readFile(key, "utf8") };
    });
  }

  /** A server or client certificate signed by CA. */
  async issue(ca: Pem, s: Subject, kind: "server" | "client"): Promise<Pem> {
    return this.inTemp(async (dir) => {
      const caCert = path.join(dir, "ca-cert.pem");
      const caKey = path.join(dir, "ca-key.pem");
      await writeFile(caCert, ca.cert, { mode: 0o600 });
      await writeFile(caKey, ca.key, { mode: 0o600 });
      const key = await this.newKey(dir, "leaf");
      const tpl = path.join(dir, `${kind}.tpl`);
      await writeFile(tpl, template(s, kind), { mode: 0o600 });
      const cert = path.join(dir, "cert.pem");
      await this.run([
        "--generate-certificate",
        "--load-privkey",
        key,
        "--load-ca-certificate",
        caCert,
        "--load-ca-privkey",
        caKey,
        "--template",
        tpl,
        "--outfile",
        cert,
      ]);
      return { cert: await readFile(cert, "utf8"), key: await readFile(key, "utf8") };
    });
  }
}
