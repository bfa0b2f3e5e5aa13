// The host's PKI: a CA that kvmstrap makes, the server certificates libvirtd, qemu's VNC and SPICE
// present (the host's names and addresses as SANs), and a console/remote client certificate.
//
// - init: makes what is missing (an existing, valid CA is kept, so clients keep trusting it); a
//   complete, valid set is left alone.
// - rotate: new server and client certificates from the same CA, or (ca: true) a new CA too. The
//   files being replaced are first copied to /etc/kvmstrap/pki/previous, then each new file is
//   written atomically, so at every instant each path holds a whole old or a whole new file.
//   After a CA rotation the trust files (cacert.pem, ca-cert.pem) hold the new CA and then the old
//   one, so clients holding certificates from the old CA still connect until the next rotation.
// - status: every file read back (X509Certificate): subject, SANs, expiry, days left, whether it
//   verifies against the CA, and the key's mode.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../../core/atomic-write.js";
import { InputError } from "../../core/errors.js";
import type { CommandRunner } from "../commands.js";
import { Certtool, type Pem } from "./certtool.js";
import {
  CA_CERT,
  CA_KEY,
  DEFAULT_CLIENT,
  modeOf,
  type PkiFile,
  PREVIOUS_DIR,
  pkiFiles,
  realPath,
} from "./layout.js";

export interface HostIdentity {
  /** The host's name: the servers' common name and first DNS SAN. */
  hostname: string;
  /** More DNS names (the FQDN, aliases). */
  dnsNames?: readonly string[];
  /** The addresses clients connect to (the management address). */
  addresses?: readonly string[];
}

export interface PkiOptions {
  runner: CommandRunner;
  /** Machine root ("/" for this host). */
  root?: string;
  /** Console client whose set is made (default "admin"). */
  client?: string;
  caDays?: number;
  serverDays?: number;
  clientDays?: number;
  now?: Date;
  /**
   * Who owns the VNC and SPICE server keys (still 0600): qemu opens them itself, as the user
   * qemu.conf runs it as (Debian: libvirt-qemu), so a root-only key would stop every console.
   */
  consoleKeyOwner?: { uid: number; gid: number };
}

export interface CertStatus {
  path: string;
  use: PkiFile["use"];
  role: PkiFile["role"];
  subject: string;
  issuer: string;
  sans: string[];
  notAfter: string;
  daysLeft: number;
  /** Signed by the current CA (the CA itself: self-signed and a CA). */
  verified: boolean;
  serial: string;
  fingerprint256: string;
}

export interface KeyStatus {
  path: string;
  use: PkiFile["use"];
  mode: number;
  /** The key is the private half of its certificate. */
  matches: boolean | null;
}

export interface PkiStatus {
  root: string;
  /** Every file present with a parsable content and the keys' modes correct, all verified. */
  complete: boolean;
  certs: CertStatus[];
  keys: KeyStatus[];
  missing: string[];
  problems: string[];
  /** The earliest expiry among the certificates (ISO 8601), null when none. */
  expires: string | null;
}

export type PkiAction = "created" | "kept" | "rotated";
export interface PkiResult {
  action: PkiAction;
  status: PkiStatus;
  /** Files written, in order. */
  written: string[];
}

const DAY_MS = 86_400_000;
const DEFAULT_DAYS = { ca: 3650, server: 825, client: 825 };

// Names and addresses a certificate may carry: DNS labels and IPv4/IPv6 literals, nothing else.
const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IP = /^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;

function checkIdentity(id: HostIdentity): void {
  for (const n of [id.hostname, ...(id.dnsNames ?? [])])
    if (!DNS_NAME.test(n)) throw new InputError(`host name "${n}": not a DNS name`);
  for (const a of id.addresses ?? [])
    if (!IP.test(a)) throw new InputError(`address "${a}": not an IPv4 or IPv6 address`);
}

const CLIENT_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

async function readText(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** The PEM certificates in a file, in order (a trust file may hold two CAs during a rotation). */
export function pemBlocks(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

function sansOf(c: X509Certificate): string[] {
  return (c.subjectAltName ?? "")
    .split(/,\s*/)
    .filter(Boolean)
    .map((s) => s.replace(/^IP Address:/, "IP:"));
}

/** Reads the PKI back; never throws for a missing or broken file (that is what status reports). */
export async function pkiStatus(o: Pick<PkiOptions, "root" | "client" | "now">): Promise<PkiStatus> {
  const root = o.root ?? "/";
  const now = (o.now ?? new Date()).getTime();
  const files = pkiFiles(o.client ?? DEFAULT_CLIENT);
  const status: PkiStatus = {
    root,
    complete: false,
    certs: [],
    keys: [],
    missing: [],
    problems: [],
    expires: null,
  };
  const caText = await readText(realPath(root, CA_CERT));
  const ca = caText ? safeCert(pemBlocks(caText)[0] ?? "") : null;
  const certByPath = new Map<string, X509Certificate>();
  for (const f of files.filter((x) => x.holds === "cert")) {
    const text = await readText(realPath(root, f.path));
    if (text === null) {
      status.missing.push(f.path);
      continue;
    }
    const c = safeCert(pemBlocks(text)[0] ?? "");
    if (!c) {
      status.problems.push(`${f.path}: not a PEM certificate`);
      continue;
    }
    if (f.role !== "ca") certByPath.set(f.path, c);
    const verified =
      ca !== null &&
      (f.role === "ca"
        ? c.ca && c.fingerprint256 === ca.fingerprint256 && c.verify(c.publicKey)
        : c.checkIssued(ca) && c.verify(ca.publicKey));
    if (!verified)
      status.problems.push(`${f.path}: not ${f.role === "ca" ? "the host's CA" : "issued by the host's CA"}`);
    const notAfter = new Date(c.validTo);
    const daysLeft = Math.floor((notAfter.getTime() - now) / DAY_MS);
    if (daysLeft < 0) status.problems.push(`${f.path}: expired on ${notAfter.toISOString()}`);
    status.certs.push({
      path: f.path,
      use: f.use,
      role: f.role,
      subject: c.subject.replace(/\n/g, ", "),
      issuer: c.issuer.replace(/\n/g, ", "),
      sans: sansOf(c),
      notAfter: notAfter.toISOString(),
      daysLeft,
      verified,
      serial: c.serialNumber,
      fingerprint256: c.fingerprint256,
    });
  }
  for (const f of files.filter((x) => x.holds === "key")) {
    const real = realPath(root, f.path);
    const st = await fs.stat(real).catch(() => null);
    if (!st) {
      status.missing.push(f.path);
      continue;
    }
    const mode = st.mode & 0o7777;
    if (mode !== modeOf(f)) status.problems.push(`${f.path}: mode ${mode.toString(8)}, wanted 600`);
    const keyText = (await readText(real)) ?? "";
    const cert = f.role === "ca" ? ca : (certByPath.get(certPathOf(f.path)) ?? null);
    const matches = cert ? keyMatches(keyText, cert) : null;
    if (matches === false) status.problems.push(`${f.path}: not the key of its certificate`);
    status.keys.push({ path: f.path, use: f.use, mode, matches });
  }
  const ends = status.certs.map((c) => c.notAfter).sort();
  status.expires = ends[0] ?? null;
  status.complete = status.missing.length === 0 && status.problems.length === 0;
  return status;
}

// libvirt's pairs: private/serverkey.pem and servercert.pem; qemu's: server-key.pem and server-cert.pem.
const certPathOf = (keyPath: string): string =>
  path.join(path.dirname(keyPath).replace(/\/private$/, ""), path.basename(keyPath).replace("key", "cert"));

function safeCert(pem: string): X509Certificate | null {
  try {
    return pem ? new X509Certificate(pem) : null;
  } catch {
    return null;
  }
}

function keyMatches(keyPem: string, cert: X509Certificate): boolean {
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

interface Issued {
  ca: Pem;
  /** The trust text: the CA, plus the CA it replaced during a CA rotation. */
  trust: string;
  server: Pem;
  client: Pem;
}

async function issueSet(
  tool: Certtool,
  id: HostIdentity,
  o: PkiOptions,
  ca: Pem,
  trust: string,
): Promise<Issued> {
  const days = {
    ...DEFAULT_DAYS,
    ...(o.serverDays ? { server: o.serverDays } : {}),
    ...(o.clientDays ? { client: o.clientDays } : {}),
  };
  const server = await tool.issue(
    ca,
    {
      cn: id.hostname,
      organization: "kvmstrap",
      dnsNames: [...new Set([id.hostname, ...(id.dnsNames ?? [])])],
      ipAddresses: [...new Set(id.addresses ?? [])],
      days: days.server,
    },
    "server",
  );
  const client = await tool.issue(
    ca,
    { cn: `${o.client ?? DEFAULT_CLIENT}@${id.hostname}`, organization: "kvmstrap", days: days.client },
    "client",
  );
  return { ca, trust, server, client };
}

/** The content each file of the layout gets from an issued set. */
function contents(set: Issued, client: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const f of pkiFiles(client)) {
    const pem =
      f.role === "ca"
        ? f.holds === "key"
          ? set.ca.key
          : set.trust
        : f.role === "server"
          ? set.server
          : set.client;
    m.set(f.path, typeof pem === "string" ? pem : f.holds === "key" ? pem.key : pem.cert);
  }
  return m;
}

async function publish(root: string, client: string, files: Map<string, string>): Promise<string[]> {
  const written: string[] = [];
  // Private directories first (0700), then the CA last of all: until the new trust file is in
  // place the old CA still verifies the old certificates that are still being replaced.
  const layout = pkiFiles(client);
  for (const f of layout) {
    if (f.holds === "key")
      await fs.mkdir(path.dirname(realPath(root, f.path)), { recursive: true, mode: 0o700 });
  }
  const order = [...layout.filter((f) => f.role !== "ca"), ...layout.filter((f) => f.role === "ca")];
  for (const f of order) {
    const content = files.get(f.path);
    if (content === undefined) continue;
    await writeFileAtomic(realPath(root, f.path), content, modeOf(f));
    written.push(f.path);
  }
  return written;
}

async function chownConsoleKeys(root: string, owner: PkiOptions["consoleKeyOwner"]): Promise<void> {
  if (!owner) return;
  for (const f of pkiFiles())
    if (f.holds === "key" && (f.use === "vnc" || f.use === "spice"))
      await fs.chown(realPath(root, f.path), owner.uid, owner.gid);
}

/** Copies the current files to /etc/kvmstrap/pki/previous (0700), replacing the last generation. */
async function keepPrevious(root: string, client: string): Promise<void> {
  const prev = realPath(root, PREVIOUS_DIR);
  const staging = `${prev}.kvmstrap-tmp-${process.pid}`;
  await fs.rm(staging, { recursive: true, force: true });
  for (const f of pkiFiles(client)) {
    const text = await readText(realPath(root, f.path));
    if (text === null) continue;
    await writeFileAtomic(path.join(staging, f.path), text, modeOf(f));
  }
  await fs.chmod(staging, 0o700).catch(() => {});
  await fs.rm(prev, { recursive: true, force: true });
  await fs.mkdir(path.dirname(prev), { recursive: true, mode: 0o700 });
  await fs.rename(staging, prev).catch(async (e) => {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e; // nothing to keep
  });
}

function checkOptions(o: PkiOptions): string {
  const client = o.client ?? DEFAULT_CLIENT;
  if (!CLIENT_NAME.test(client))
    throw new InputError(`client name "${client}": use a-z, 0-9, - and _ (max 32)`);
  return client;
}

async function needTool(o: PkiOptions): Promise<Certtool> {
  const tool = new Certtool(o.runner);
  if (!(await tool.available()))
    throw new InputError("certtool not found: install Debian's gnutls-bin (apt-get install gnutls-bin)");
  return tool;
}

async function currentCa(root: string): Promise<Pem | null> {
  const [cert, key] = [await readText(realPath(root, CA_CERT)), await readText(realPath(root, CA_KEY))];
  if (!cert || !key) return null;
  const first = pemBlocks(cert)[0];
  const c = first ? safeCert(first) : null;
  if (!first || !c?.ca || !keyMatches(key, c)) return null;
  return { cert: first, key };
}

/** Makes the host's PKI where it is missing or broken; a complete, valid set is kept as it is. */
export async function initPki(id: HostIdentity, o: PkiOptions): Promise<PkiResult> {
  checkIdentity(id);
  const client = checkOptions(o);
  const root = o.root ?? "/";
  const before = await pkiStatus({ root, client, ...(o.now ? { now: o.now } : {}) });
  if (before.complete) {
    await chownConsoleKeys(root, o.consoleKeyOwner);
    return { action: "kept", status: before, written: [] };
  }
  const tool = await needTool(o);
  const existing = await currentCa(root);
  const ca =
    existing ??
    (await tool.ca({
      cn: `kvmstrap CA ${id.hostname}`,
      organization: "kvmstrap",
      days: o.caDays ?? DEFAULT_DAYS.ca,
    }));
  const set = await issueSet(tool, id, o, ca, ca.cert);
  if (before.missing.length < pkiFiles(client).length) await keepPrevious(root, client);
  const written = await publish(root, client, contents(set, client));
  await chownConsoleKeys(root, o.consoleKeyOwner);
  const status = await pkiStatus({ root, client, ...(o.now ? { now: o.now } : {}) });
  return { action: "created", status, written };
}

/** New server and client certificates (and a new CA with `ca`), the replaced set kept in previous/. */
export async function rotatePki(id: HostIdentity, o: PkiOptions & { ca?: boolean }): Promise<PkiResult> {
  checkIdentity(id);
  const client = checkOptions(o);
  const root = o.root ?? "/";
  const tool = await needTool(o);
  const old = await currentCa(root);
  if (!old && !o.ca) throw new InputError(`no usable CA at ${realPath(root, CA_CERT)}: run pki init first`);
  const ca =
    o.ca || !old
      ? await tool.ca({
          cn: `kvmstrap CA ${id.hostname}`,
          organization: "kvmstrap",
          days: o.caDays ?? DEFAULT_DAYS.ca,
        })
      : old;
  const trust = old && ca !== old ? `${ca.cert.trimEnd()}\n${old.cert.trimEnd()}\n` : ca.cert;
  const set = await issueSet(tool, id, o, ca, trust);
  await keepPrevious(root, client);
  const written = await publish(root, client, contents(set, client));
  await chownConsoleKeys(root, o.consoleKeyOwner);
  const status = await pkiStatus({ root, client, ...(o.now ? { now: o.now } : {}) });
  return { action: "rotated", status, written };
}
