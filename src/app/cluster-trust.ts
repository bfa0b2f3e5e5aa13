// The cluster's trust material on a member, and the join bundle that carries it to the next one.
//
// One CA per cluster, made by `cluster init` and distinct from a lone host's CA (`kvmstrap pki`): a
// member's certificate opens every member's libvirtd, so the CA that signs it must be the cluster's
// own, and a host's old console or admin certificates must not open the other members. The cluster
// CA becomes each member's libvirt CA (/etc/pki/CA, libvirt's default, which libvirtd, its
// peer-to-peer migration client and virsh read without a setting) and the host's certificates are
// re-issued from it through src/host/pki (the set replaced is kept in /etc/kvmstrap/pki/previous).
// A copy of the CA, the corosync authkey and what this host joined stay under /etc/kvmstrap/cluster
// (0700; keys 0600, the authkey 0400), where `cluster certs`, `rotate-certs` and the plan's authkey
// step read them.
//
// The bundle is JSON (0600, written atomically) with the CA certificate and key and the authkey: it
// is a secret, never logged or printed; a join reads it bounded in size and checks it (a key that is
// not the certificate's, a CA that is not one, another cluster's name) before using any of it.
import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
import { promises as fs } from "node:fs";
import path from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import { Certtool } from "../host/pki/certtool.js";
import { CA_CERT, CA_KEY, PKI_DIRS, realPath } from "../host/pki/layout.js";
import { pemBlocks, rotatePki } from "../host/pki/pki.js";
import { CLUSTER_PATHS } from "../plan/cluster-plan.js";
import { adaptersFor } from "./adapters.js";
import { qemuKeyOwner } from "./pki.js";

export const BUNDLE_SCHEMA = "kvmstrap.cluster-bundle/1";
const MAX_BUNDLE_BYTES = 64 * 1024;
/** corosync-keygen's default: 2048 bits from the kernel's random source, as randomBytes reads it. */
const AUTHKEY_BYTES = 256;

// certtool's key files open with a text dump of the key before the PEM block: a block anywhere.
const pem = (what: string) =>
  z
    .string()
    .max(16_384)
    .regex(/-----BEGIN [A-Z ]+-----\n[\s\S]+\n-----END [A-Z ]+-----/, what);
const bundleSchema = z.strictObject({
  schema: z.literal(BUNDLE_SCHEMA),
  cluster: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  createdAt: z.string().max(40),
  caCert: pem("a PEM certificate"),
  caKey: pem("a PEM private key"),
  authkey: z
    .string()
    .regex(/^[A-Za-z0-9+/]+=*$/)
    .max(8192),
});
export type Bundle = z.infer<typeof bundleSchema>;

export interface ClusterState {
  cluster: string;
  /** This member's host name and addresses, as the answer gave them. */
  self: { host: string; address: string; migrationAddress: string };
  members: { host: string; address: string }[];
  caFingerprint256: string;
  updatedAt: string;
}

export interface Trust {
  cluster: string;
  caCert: string;
  caKey: string;
  authkey: Buffer;
}

const at = (root: string, p: string) => realPath(root, p);

async function readOr(file: string): Promise<string | null> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

function checkCa(caCert: string, caKey: string, where: string): X509Certificate {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(caCert);
  } catch {
    throw new InputError(`${where}: caCert is not a certificate`);
  }
  if (!cert.ca) throw new InputError(`${where}: caCert is not a CA certificate`);
  let matches = false;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(caKey));
  } catch {
    matches = false;
  }
  if (!matches) throw new InputError(`${where}: caKey is not the key of caCert`);
  return cert;
}

/** A new cluster CA and authkey (certtool, as the host PKI makes its CA). */
export async function newTrust(cluster: string): Promise<Trust> {
  const tool = new Certtool(adaptersFor("/").runner);
  if (!(await tool.available()))
    throw new InputError("certtool not found: install Debian's gnutls-bin (apt-get install gnutls-bin)");
  const ca = await tool.ca({ cn: `kvmstrap cluster CA ${cluster}`, organization: "kvmstrap", days: 3650 });
  return { cluster, caCert: ca.cert, caKey: ca.key, authkey: randomBytes(AUTHKEY_BYTES) };
}

/** The trust this host keeps, or null when it is in no cluster. */
export async function keptTrust(root: string): Promise<Trust | null> {
  const [cert, key, state] = await Promise.all([
    readOr(at(root, CLUSTER_PATHS.caCert)),
    readOr(at(root, CLUSTER_PATHS.caKey)),
    readClusterState(root),
  ]);
  const authkey = await fs.readFile(at(root, CLUSTER_PATHS.authkey)).catch(() => null);
  if (!cert || !key || !authkey || !state) return null;
  checkCa(cert, key, at(root, CLUSTER_PATHS.caCert));
  return { cluster: state.cluster, caCert: cert, caKey: key, authkey };
}

export async function readClusterState(root: string): Promise<ClusterState | null> {
  const text = await readOr(at(root, CLUSTER_PATHS.state));
  if (text === null) return null;
  try {
    return JSON.parse(text) as ClusterState;
  } catch {
    throw new InputError(`${at(root, CLUSTER_PATHS.state)}: not JSON; remove it and join again`);
  }
}

/** Keeps the trust under /etc/kvmstrap/cluster (private files, each written atomically). */
export async function keepTrust(
  root: string,
  t: Trust,
  state: Omit<ClusterState, "caFingerprint256" | "updatedAt">,
) {
  const cert = checkCa(t.caCert, t.caKey, "the cluster CA");
  const dir = at(root, CLUSTER_PATHS.dir);
  await fs.mkdir(path.join(dir, "private"), { recursive: true, mode: 0o700 });
  await fs.chmod(dir, 0o700);
  await writeFileAtomic(at(root, CLUSTER_PATHS.caKey), t.caKey, 0o600);
  await writeFileAtomic(at(root, CLUSTER_PATHS.authkey), t.authkey, 0o400);
  await writeFileAtomic(at(root, CLUSTER_PATHS.caCert), t.caCert, 0o644);
  const full: ClusterState = {
    ...state,
    caFingerprint256: cert.fingerprint256,
    updatedAt: new Date().toISOString(),
  };
  await writeFileAtomic(at(root, CLUSTER_PATHS.state), `${JSON.stringify(full, null, 2)}\n`, 0o644);
}

export async function writeBundle(file: string, t: Trust): Promise<void> {
  const bundle: Bundle = {
    schema: BUNDLE_SCHEMA,
    cluster: t.cluster,
    createdAt: new Date().toISOString(),
    caCert: t.caCert,
    caKey: t.caKey,
    authkey: t.authkey.toString("base64"),
  };
  await writeFileAtomic(path.resolve(file), `${JSON.stringify(bundle)}\n`, 0o600);
}

/** Reads a join bundle: a regular file, at most 64 KiB, whole and consistent, for CLUSTER. */
export async function readBundle(file: string, cluster: string): Promise<Trust> {
  const st = await fs.lstat(file).catch(() => null);
  if (!st) throw new InputError(`--bundle ${file}: no such file`);
  if (!st.isFile()) throw new InputError(`--bundle ${file}: not a regular file`);
  if (st.size > MAX_BUNDLE_BYTES)
    throw new InputError(`--bundle ${file}: larger than a join bundle (${st.size} bytes)`);
  let data: unknown;
  try {
    data = JSON.parse(await fs.readFile(file, "utf8"));
  } catch {
    throw new InputError(`--bundle ${file}: not a join bundle (not JSON)`);
  }
  const r = bundleSchema.safeParse(data);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new InputError(`--bundle ${file}: ${i?.path.join(".") || "(file)"}: ${i?.message ?? "invalid"}`);
  }
  const b = r.data;
  if (b.cluster !== cluster)
    throw new InputError(
      `--bundle ${file}: it is cluster ${b.cluster}'s, and the answer's cluster.name is ${cluster}`,
    );
  checkCa(b.caCert, b.caKey, `--bundle ${file}`);
  const authkey = Buffer.from(b.authkey, "base64");
  if (authkey.length < 128)
    throw new InputError(`--bundle ${file}: authkey: shorter than corosync's 128 bytes`);
  return { cluster: b.cluster, caCert: b.caCert, caKey: b.caKey, authkey };
}

/** Whether the host's libvirt CA (/etc/pki/CA) is this cluster CA, alone in the trust file. */
async function caInPlace(root: string, t: Trust): Promise<boolean> {
  const [cert, key] = [await readOr(at(root, CA_CERT)), await readOr(at(root, CA_KEY))];
  return cert?.trim() === t.caCert.trim() && key?.trim() === t.caKey.trim();
}

export interface CertsRequest {
  root: string;
  hostname: string;
  addresses: string[];
}

/** The files qemu's x509 directory and a pkipath= client directory are made of, from libvirt's. */
function derivedCopies(): [from: string, to: string, key: boolean][] {
  const lv = PKI_DIRS.libvirt;
  const q = CLUSTER_PATHS.qemuTlsDir;
  const c = CLUSTER_PATHS.clientDir;
  return [
    [CA_CERT, `${q}/ca-cert.pem`, false],
    [`${lv}/servercert.pem`, `${q}/server-cert.pem`, false],
    [`${lv}/private/serverkey.pem`, `${q}/server-key.pem`, true],
    [`${lv}/clientcert.pem`, `${q}/client-cert.pem`, false],
    [`${lv}/private/clientkey.pem`, `${q}/client-key.pem`, true],
    [CA_CERT, `${c}/cacert.pem`, false],
    [`${lv}/clientcert.pem`, `${c}/clientcert.pem`, false],
    [`${lv}/private/clientkey.pem`, `${c}/clientkey.pem`, true],
  ];
}

function parseCert(text: string): X509Certificate | null {
  try {
    return new X509Certificate(text);
  } catch {
    return null;
  }
}

/** What is not yet as `cluster certs` makes it (empty: complete). */
export async function certProblems(r: CertsRequest): Promise<string[]> {
  const t = await keptTrust(r.root);
  if (!t) return [`${CLUSTER_PATHS.dir}: no cluster trust (run kvmstrap cluster init or join)`];
  const problems: string[] = [];
  if (!(await caInPlace(r.root, t))) problems.push(`${CA_CERT}: not the cluster CA`);
  const server = await readOr(at(r.root, `${PKI_DIRS.libvirt}/servercert.pem`));
  const ca = new X509Certificate(t.caCert);
  const cert = server ? parseCert(pemBlocks(server)[0] ?? server) : null;
  if (!cert?.checkIssued(ca) || !cert.verify(ca.publicKey))
    problems.push(`${PKI_DIRS.libvirt}/servercert.pem: not issued by the cluster CA`);
  else {
    const sans = cert.subjectAltName ?? "";
    for (const a of r.addresses)
      if (!sans.includes(`IP Address:${a}`)) problems.push(`servercert.pem: does not name ${a}`);
    if (new Date(cert.validTo).getTime() < Date.now()) problems.push("servercert.pem: expired");
  }
  for (const [from, to] of derivedCopies()) {
    const [a, b] = [await readOr(at(r.root, from)), await readOr(at(r.root, to))];
    if (a === null || a !== b) problems.push(`${to}: not a copy of ${from}`);
  }
  return problems;
}

/**
 * This member's certificates from the cluster CA: the CA put in libvirt's place, the server and
 * client certificates issued for the host name and ADDRESSES (src/host/pki), qemu's x509 directory
 * and the pkipath= client directory made of the same files. Nothing is written when complete.
 */
export async function issueMemberCerts(
  r: CertsRequest & { force?: boolean },
): Promise<{ written: string[]; kept: boolean }> {
  if (!r.force && (await certProblems(r)).length === 0) return { written: [], kept: true };
  const t = await keptTrust(r.root);
  if (!t)
    throw new InputError(
      `${at(r.root, CLUSTER_PATHS.dir)}: no cluster trust: run kvmstrap cluster init or join first`,
    );
  const written: string[] = [];
  if (!(await caInPlace(r.root, t))) {
    // The CA first (key, then certificate, each atomic): the rotation below issues from it.
    await fs.mkdir(path.dirname(at(r.root, CA_KEY)), { recursive: true, mode: 0o700 });
    await writeFileAtomic(at(r.root, CA_KEY), t.caKey, 0o600);
    await writeFileAtomic(at(r.root, CA_CERT), t.caCert, 0o644);
    written.push(CA_KEY, CA_CERT);
  }
  const owner = await qemuKeyOwner(r.root);
  const result = await rotatePki(
    { hostname: r.hostname, addresses: r.addresses },
    { runner: adaptersFor("/").runner, root: r.root, ...(owner ? { consoleKeyOwner: owner } : {}) },
  );
  written.push(...result.written);
  await fs.mkdir(at(r.root, CLUSTER_PATHS.qemuTlsDir), { recursive: true, mode: 0o755 });
  for (const [from, to, key] of derivedCopies()) {
    const text = await fs.readFile(at(r.root, from), "utf8");
    await writeFileAtomic(at(r.root, to), text, key ? 0o600 : 0o644);
    // qemu opens its migration and NBD keys itself, as the user qemu.conf runs it as.
    if (key && owner && to.startsWith(CLUSTER_PATHS.qemuTlsDir))
      await fs.chown(at(r.root, to), owner.uid, owner.gid);
    written.push(to);
  }
  return { written, kept: false };
}

/** Removes what kvmstrap keeps for the cluster (leave): the CA copy, the authkey, the derived dirs. */
export async function forgetTrust(root: string): Promise<void> {
  for (const [, to] of derivedCopies()) await fs.rm(at(root, to), { force: true });
  await fs.rm(at(root, CLUSTER_PATHS.dir), { recursive: true, force: true });
}
