// Test-owned libvirtd "hosts" (two unless asked for more) that reach each other over TLS, for
// migration tests and benches.
//
// Each is a startTestLibvirtd (test/e2e/libvirtd.ts) with its own UTS namespace and hostname, its own
// host_uuid, and libvirtd listening for TLS only (16514) on its address of a migration network: a
// bridge in the host's network namespace, joined to each host's namespace by a veth pair. The host
// itself has an address on that bridge, so the CLI under test (run here) reaches both daemons.
//
// Trust comes from kvmstrap's own PKI (src/host/pki through src/app/pki.ts): `pki init` for host A
// makes the CA; host B's (and any further host's) root is given A's CA first, so its `pki init`
// keeps that CA and issues its server and client certificates from it. The files stay in each host's root (libvirt's layout under
// ROOT/pki-root); libvirtd.conf names its server files, and qemu.conf's TLS directory (migration and
// NBD streams) is made of the same files under the names qemu reads. Clients pass pkipath= in the
// URI: the host's own /etc/pki is never touched. The names carry this process id and are removed.
import { copyFile, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { pkiInit } from "../../src/app/pki.js";
import { startTestLibvirtd, type TestLibvirtd } from "../e2e/libvirtd.js";

export type ClusterHost = {
  name: string;
  address: string;
  daemon: TestLibvirtd;
  /** The local (unix socket) URI, as on the host itself. */
  localUri: string;
  /** qemu+tls://ADDRESS/system with a client certificate from the cluster CA. */
  tlsUri: string;
  /** The machine root holding this host's PKI (etc/pki/...). */
  pkiRoot: string;
};
export type Cluster = {
  a: ClusterHost;
  b: ClusterHost;
  /** Every host in order (a, b, then c... when `hosts` asked for more). */
  hosts: ClusterHost[];
  bridge: string;
  dir: string;
  stop(): Promise<void>;
};

/** A host's trust as a `pki` option made it: the root, libvirt's pkipath= and qemu's x509 directory. */
export type HostPki = {
  root: string;
  clientDir: string;
  qemuDir: string;
  /** libvirtd.conf's TLS lines (default: the server files under root, client certificates verified). */
  libvirtdConf?: string;
  /** qemu.conf's TLS lines (default: qemuDir with peers verified). */
  qemuConf?: string;
};
export type ClusterOptions = {
  /** How many hosts: kvmcl-a, kvmcl-b, kvmcl-c... at NET.1, NET.2, NET.3... (default 2). */
  hosts?: number;
  /**
   * Makes every host's trust, in the hosts' order, instead of `pki init` with a shared CA (the
   * cluster tests run `kvmstrap cluster init|join` here). NET is the /24's first three octets.
   */
  pki?: (dir: string, hosts: { name: string; address: string }[], net: string) => Promise<HostPki[]>;
};

const run = (file: string, args: string[]) => execa(file, args, { env: { LC_ALL: "C" } });

async function hostPki(dir: string, name: string, address: string, ca?: string): Promise<HostPki> {
  const root = path.join(dir, `${name}-pki-root`);
  if (ca) {
    await mkdir(path.join(root, "etc/pki/CA/private"), { recursive: true });
    await copyFile(path.join(ca, "etc/pki/CA/cacert.pem"), path.join(root, "etc/pki/CA/cacert.pem"));
    await copyFile(
      path.join(ca, "etc/pki/CA/private/cakey.pem"),
      path.join(root, "etc/pki/CA/private/cakey.pem"),
    );
  }
  await pkiInit({ root, hostname: name, addresses: [address] });
  // A client directory in the names libvirt's pkipath= reads, and qemu's x509 directory.
  const p = (f: string) => path.join(root, "etc/pki", f);
  const client = path.join(root, "client");
  const qemu = path.join(root, "qemu");
  await mkdir(client, { recursive: true });
  await mkdir(qemu, { recursive: true });
  const copies: [string, string][] = [
    [p("CA/cacert.pem"), `${client}/cacert.pem`],
    [p("libvirt/clientcert.pem"), `${client}/clientcert.pem`],
    [p("libvirt/private/clientkey.pem"), `${client}/clientkey.pem`],
    [p("CA/cacert.pem"), `${qemu}/ca-cert.pem`],
    [p("libvirt/servercert.pem"), `${qemu}/server-cert.pem`],
    [p("libvirt/private/serverkey.pem"), `${qemu}/server-key.pem`],
    [p("libvirt/clientcert.pem"), `${qemu}/client-cert.pem`],
    [p("libvirt/private/clientkey.pem"), `${qemu}/client-key.pem`],
  ];
  for (const [from, to] of copies) await copyFile(from, to);
  return { root, clientDir: client, qemuDir: qemu };
}

async function startHost(
  name: string,
  address: string,
  uuid: string,
  bridge: string,
  pki: HostPki,
): Promise<ClusterHost> {
  const pkiRoot = pki.root;
  const p = (f: string) => path.join(pkiRoot, "etc/pki", f);
  const daemon = await startTestLibvirtd({
    hostname: name,
    listen: true,
    libvirtdConf: [
      `host_uuid = "${uuid}"`,
      // Any address of its own namespace, which has only lo and its migration link.
      `listen_addr = "0.0.0.0"`,
      pki.libvirtdConf ??
        [
          "listen_tls = 1",
          "listen_tcp = 0",
          `ca_file = "${p("CA/cacert.pem")}"`,
          `cert_file = "${p("libvirt/servercert.pem")}"`,
          `key_file = "${p("libvirt/private/serverkey.pem")}"`,
          "tls_no_verify_certificate = 0",
        ].join("\n"),
    ].join("\n"),
    qemuConf:
      pki.qemuConf ??
      [
        `migration_host = "${address}"`,
        `migration_address = "${address}"`,
        `default_tls_x509_cert_dir = "${pki.qemuDir}"`,
        "default_tls_x509_verify = 1",
      ].join("\n"),
  });
  // The host's end joins the migration bridge; the namespace's end carries the host's address.
  const tag = `${(daemon.pid % 0xffff).toString(16)}`;
  const outer = `kvcl${tag}o`;
  await run("ip", [
    "link",
    "add",
    outer,
    "type",
    "veth",
    "peer",
    "name",
    "mig0",
    "netns",
    String(daemon.pid),
  ]);
  await run("ip", ["link", "set", outer, "master", bridge]);
  await run("ip", ["link", "set", outer, "up"]);
  await daemon.nsExec("ip", ["addr", "add", `${address}/24`, "dev", "mig0"]);
  await daemon.nsExec("ip", ["link", "set", "mig0", "up"]);
  const tlsUri = `qemu+tls://${address}/system?pkipath=${pki.clientDir}`;
  // The address came after libvirtd's listener (on 0.0.0.0): wait until it answers on it.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await execa("virsh", ["-c", tlsUri, "hostname"], { reject: false, env: { LC_ALL: "C" } });
    if (r.exitCode === 0 && r.stdout.trim() === name) break;
    if (Date.now() > deadline) throw new Error(`${name}: no TLS answer at ${tlsUri}: ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 200));
  }
  return { name, address, daemon, localUri: daemon.uri, tlsUri, pkiRoot };
}

/** Starts hosts "kvmcl-a" (NET.1), "kvmcl-b" (NET.2)... on a fresh bridge; the host is NET.254. */
export async function startCluster(o: ClusterOptions = {}): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-cluster-${process.pid}-`));
  const bridge = `kvclbr${(process.pid % 0xffff).toString(16)}`;
  const net = `10.${200 + (process.pid % 50)}.${process.pid % 250}`;
  await run("ip", ["link", "add", bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", `${net}.254/24`, "dev", bridge]);
  await run("ip", ["link", "set", bridge, "up"]);
  const started: ClusterHost[] = [];
  const stop = async () => {
    for (const h of started) await h.daemon.stop().catch(() => {});
    await execa("ip", ["link", "del", bridge], { reject: false });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const hosts = Array.from({ length: o.hosts ?? 2 }, (_, i) => ({
      name: `kvmcl-${String.fromCharCode(97 + i)}`,
      address: `${net}.${i + 1}`,
      uuid: `6a0b3f7e-0000-4000-8000-00000000000${String.fromCharCode(97 + i)}`,
    }));
    const roots = o.pki
      ? await o.pki(dir, hosts, net)
      : await (async () => {
          const out: HostPki[] = [];
          for (const h of hosts) out.push(await hostPki(dir, h.name, h.address, out[0]?.root));
          return out;
        })();
    const settled = await Promise.allSettled(
      hosts.map((h, i) => startHost(h.name, h.address, h.uuid, bridge, roots[i] as HostPki)),
    );
    for (const s of settled) if (s.status === "fulfilled") started.push(s.value);
    const failed = settled.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    const [a, b] = started as [ClusterHost, ClusterHost];
    return { a, b, hosts: [...started], bridge, dir, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
