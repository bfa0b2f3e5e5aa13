// The cluster: section on this member: trust between the hosts and the daemons' settings that use it.
// - this host's certificates from the cluster CA (`kvmstrap cluster certs`: the keys are made on the
//   host and never carried in a plan or its journal), laid out where libvirtd, its migration client
//   and virsh read them by default (/etc/pki/CA, /etc/pki/libvirt), and qemu's x509 directory
//   (/etc/pki/qemu) for the migration and NBD streams;
// - libvirtd.conf: TLS only with client certificates verified (a managed block), Debian 12's socket
//   units (libvirtd-tls.socket on, libvirtd-tcp.socket off: under socket activation they decide what
//   listens, listen_tls/listen_tcp act under `libvirtd --listen`);
// - qemu.conf: migration and NBD over TLS with the peer's certificate verified, migration on this
//   member's migration address (a managed block);
// - corosync's authkey (0400) from the copy `cluster init|join` keeps, for the corosync.conf the HA
//   plan writes (its crypto_cipher/crypto_hash use it).
// The join bundle's CA key and authkey reach the host through `kvmstrap cluster init|join`, never
// through this plan. What the rule set refused (this host not a member, a bad address) plans nothing.
import { migrationAddressOf, selfMember } from "../answer/rules/cluster.js";
import type { Cluster, ClusterMember } from "../answer/schema-cluster.js";
import { CA_CERT, PKI_DIRS } from "../host/pki/layout.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";
import { planHa } from "./ha-plan.js";
import { LIBVIRTD_SOCKETS_RESTART, TLS_SOCKET_LISTENS } from "./libvirtd-sockets.js";
import { type ConfSetting, managedBlock, withManagedBlock } from "./managed-conf-block.js";
import { planRbdStorage } from "./rbd-plan.js";
import { planSharedStorage } from "./shared-storage-plan.js";

export const CLUSTER_PATHS = {
  libvirtdConf: "/etc/libvirt/libvirtd.conf",
  qemuConf: "/etc/libvirt/qemu.conf",
  /** What `cluster init|join` keep: the CA (cacert.pem, private/cakey.pem), the authkey, state. */
  dir: "/etc/kvmstrap/cluster",
  caCert: "/etc/kvmstrap/cluster/cacert.pem",
  caKey: "/etc/kvmstrap/cluster/private/cakey.pem",
  authkey: "/etc/kvmstrap/cluster/authkey",
  state: "/etc/kvmstrap/cluster/cluster.json",
  /** libvirt's pkipath= layout (cacert.pem, clientcert.pem, clientkey.pem): status, tests, roots. */
  clientDir: "/etc/kvmstrap/cluster/client",
  /** qemu's x509 directory (ca-cert, server-cert/key, client-cert/key): libvirt's default one. */
  qemuTlsDir: "/etc/pki/qemu",
  corosyncAuthkey: "/etc/corosync/authkey",
} as const;

/** Distinct from the consoles' and hardening's prefixes: each block restores only what it commented out. */
const BLOCK = managedBlock("cluster", "#kvmstrap-cluster# ");

export function withClusterBlock(current: string, settings: readonly ConfSetting[]): string {
  return withManagedBlock(BLOCK, current, settings);
}

/**
 * libvirtd.conf: TLS only, the client certificate verified against the cluster CA and the only
 * credential (auth_tls none: a member's libvirtd connects for p2p migration with its certificate).
 * The files are libvirt's defaults, named so an operator reading the file sees what is trusted.
 */
export function clusterLibvirtdSettings(pki: { dir: string; caCert: string } = PKI_CONF): ConfSetting[] {
  return [
    ["listen_tls", 1],
    ["listen_tcp", 0],
    ["tls_no_verify_certificate", 0],
    ["auth_tls", "none"],
    ["ca_file", pki.caCert],
    ["cert_file", `${pki.dir}/servercert.pem`],
    ["key_file", `${pki.dir}/private/serverkey.pem`],
  ];
}
const PKI_CONF = { dir: PKI_DIRS.libvirt, caCert: CA_CERT };

/** qemu.conf: migration and NBD streams over TLS from qemuTlsDir, peers verified, on this address. */
export function clusterQemuSettings(
  self: ClusterMember,
  tlsDir: string = CLUSTER_PATHS.qemuTlsDir,
): ConfSetting[] {
  const at = migrationAddressOf(self);
  return [
    ["default_tls_x509_cert_dir", tlsDir],
    ["default_tls_x509_verify", 1],
    ["migrate_tls_x509_verify", 1],
    // Every migration of this host uses TLS (vm migrate passes --tls): a plain one is refused.
    ["migrate_tls_force", 1],
    ["nbd_tls", 1],
    ["migration_address", at],
    ["migration_host", at],
  ];
}

/** The addresses this member's server certificate names: its cluster and migration addresses. */
export const certificateAddresses = (self: ClusterMember): string[] => [
  ...new Set([self.address, migrationAddressOf(self)]),
];

/** The content a file has once the actions planned before this one ran (consoles, hardening). */
function plannedContent(ctx: PlanContext, path: string): string {
  for (let i = ctx.actions.length - 1; i >= 0; i--) {
    const a = ctx.actions[i];
    if (a?.kind === "write-file" && a.path === path) return a.content;
  }
  return currentOf(ctx, path) ?? "";
}

const isEnabled = (unit: string) => ["systemctl", "is-enabled", "--quiet", unit];

/** This host's member entry when the section is present and the rule set refused none of it. */
export function clusterSelf(ctx: PlanContext): { cluster: Cluster; self: ClusterMember } | null {
  const c = ctx.answer.cluster;
  if (!c || isRefused(ctx, "cluster.members", "cluster", "cluster.networks", "cluster.networks.cluster"))
    return null;
  if (c.networks.migration !== undefined && isRefused(ctx, "cluster.networks.migration")) return null;
  const self = selfMember(c, ctx.report);
  return self ? { cluster: c, self } : null;
}

export function planCluster(ctx: PlanContext): void {
  const found = clusterSelf(ctx);
  if (!found) return;
  const { cluster, self } = found;
  const addresses = certificateAddresses(self);
  planCommand(ctx, {
    id: "cluster.certs",
    argv: ["kvmstrap", "cluster", "certs", ...addresses.flatMap((a) => ["--address", a])],
    check: ["kvmstrap", "cluster", "certs", "--check", ...addresses.flatMap((a) => ["--address", a])],
    effect: "none",
    summary: `this member's libvirt and qemu certificates from cluster ${cluster.name}'s CA (names ${self.host}, ${addresses.join(", ")})`,
  });
  planCommand(ctx, {
    id: "cluster.corosync-authkey",
    argv: [
      "install",
      "-D",
      "-m",
      "0400",
      "-o",
      "root",
      "-g",
      "root",
      CLUSTER_PATHS.authkey,
      CLUSTER_PATHS.corosyncAuthkey,
    ],
    undo: ["rm", "-f", CLUSTER_PATHS.corosyncAuthkey],
    check: ["cmp", "-s", CLUSTER_PATHS.authkey, CLUSTER_PATHS.corosyncAuthkey],
    effect: "none",
    summary: "corosync's authkey (0400): the cluster's key for corosync's encryption and authentication",
  });
  const libvirtd = CLUSTER_PATHS.libvirtdConf;
  const qemu = CLUSTER_PATHS.qemuConf;
  const libvirtdBase = plannedContent(ctx, libvirtd);
  const qemuBase = plannedContent(ctx, qemu);
  const libvirtdContent = withClusterBlock(libvirtdBase, clusterLibvirtdSettings());
  const qemuContent = withClusterBlock(qemuBase, clusterQemuSettings(self));
  const changes = libvirtdContent !== libvirtdBase || qemuContent !== qemuBase;
  if (changes)
    planCommand(ctx, {
      id: "cluster.libvirtd-restart-on-undo",
      argv: ["true"],
      undo: [...LIBVIRTD_SOCKETS_RESTART],
      effect: "none",
      summary: "on undo: restart libvirtd and its sockets once libvirtd.conf and qemu.conf are restored",
    });
  if (libvirtdContent !== libvirtdBase)
    planFile(ctx, {
      id: "cluster.libvirtd-conf",
      path: libvirtd,
      content: libvirtdContent,
      mode: 0o644,
      effect: "none",
      summary: "libvirtd.conf: TLS only, client certificates from the cluster CA verified, no plain TCP",
    });
  if (qemuContent !== qemuBase)
    planFile(ctx, {
      id: "cluster.qemu-conf",
      path: qemu,
      content: qemuContent,
      mode: 0o600,
      effect: "none",
      summary: `qemu.conf: migration and NBD streams over TLS, peers verified, on ${migrationAddressOf(self)}`,
    });
  planCommand(ctx, {
    id: "cluster.tcp-socket",
    argv: ["systemctl", "disable", "--now", "libvirtd-tcp.socket"],
    // Started again by the restart on undo (systemd starts no socket of a running libvirtd).
    undo: ["systemctl", "enable", "libvirtd-tcp.socket"],
    check: ["sh", "-c", "! systemctl is-enabled --quiet libvirtd-tcp.socket"],
    effect: "none",
    summary: "libvirtd-tcp.socket disabled: never plain TCP (16509) between members",
  });
  planCommand(ctx, {
    id: "cluster.tls-socket",
    // Enabled only: it starts with the restart below (systemd starts no socket of a running libvirtd).
    argv: ["systemctl", "enable", "libvirtd-tls.socket"],
    undo: ["systemctl", "disable", "--now", "libvirtd-tls.socket"],
    check: isEnabled("libvirtd-tls.socket"),
    effect: "none",
    summary: "libvirtd-tls.socket enabled: members reach each other's libvirtd over TLS (16514)",
  });
  // The TLS socket starts and libvirtd, if running, starts again with it and the settings just
  // written. With no file changed, only where the socket does not listen yet.
  planCommand(ctx, {
    id: "cluster.libvirtd-restart",
    argv: [...LIBVIRTD_SOCKETS_RESTART],
    check: changes ? null : [...TLS_SOCKET_LISTENS],
    effect: "none",
    summary: "restart libvirtd with the TLS socket so it listens for TLS with the cluster's certificates",
  });
  // After the trust they need: the shared pools (the same on every member, so a VM on them migrates
  // without copying its disk), then HA (corosync.conf uses the authkey placed above; pacemaker's
  // VirtualDomain migrates over the TLS set up above).
  planSharedStorage(ctx, self.host);
  planRbdStorage(ctx);
  planHa(ctx, { cluster, self: self.host });
}

/** The actions a cluster's part of a plan is made of: this planner's and those it calls. */
export const isClusterAction = (id: string): boolean => id.startsWith("cluster.") || id.startsWith("ha.");
