// Where the per-host PKI lives: libvirt's own layout, so libvirtd (remote TLS), qemu (VNC, SPICE)
// and virt-viewer find the files without a setting changed. Pure paths, no I/O: the planner
// names these files in qemu.conf and libvirtd.conf, the PKI module writes them.
//
// - /etc/pki/CA/cacert.pem and /etc/pki/CA/private/cakey.pem: the CA (libvirtd reads the first).
// - /etc/pki/libvirt/{servercert,clientcert}.pem, private/{serverkey,clientkey}.pem: libvirtd's TLS
//   (the client pair is what `virsh -c qemu+tls://` on this host presents).
// - /etc/pki/libvirt-vnc and /etc/pki/libvirt-spice: {ca-cert,server-cert,server-key}.pem, the
//   names qemu's x509 credentials directory uses (qemu.conf's vnc_tls_x509_cert_dir).
// - /etc/kvmstrap/pki/clients/NAME/{ca-cert,client-cert,client-key}.pem: a console client's set,
//   the same names a qemu or gtk-vnc client directory uses; handed to virt-viewer by the .vv file.
// - /etc/kvmstrap/pki/previous: the set a rotation replaced (one generation), kept for rollback.
import path from "node:path";

export type CertRole = "ca" | "server" | "client";

export interface PkiFile {
  /** Host path ("/etc/pki/..."), the same under every root. */
  path: string;
  /** What it holds. */
  holds: "cert" | "key";
  role: CertRole;
  /** Which consumer reads it: libvirtd, qemu's VNC, qemu's SPICE, a console client, the CA itself. */
  use: "ca" | "libvirt" | "vnc" | "spice" | "client";
}

export const PKI_DIRS = {
  ca: "/etc/pki/CA",
  libvirt: "/etc/pki/libvirt",
  vnc: "/etc/pki/libvirt-vnc",
  spice: "/etc/pki/libvirt-spice",
  kvmstrap: "/etc/kvmstrap/pki",
} as const;

export const CA_CERT = `${PKI_DIRS.ca}/cacert.pem`;
export const CA_KEY = `${PKI_DIRS.ca}/private/cakey.pem`;
export const PREVIOUS_DIR = `${PKI_DIRS.kvmstrap}/previous`;
export const DEFAULT_CLIENT = "admin";

/** The x509 credentials directory qemu reads for VNC or SPICE (qemu.conf's *_tls_x509_cert_dir). */
export const consoleCertDir = (kind: "vnc" | "spice"): string => PKI_DIRS[kind];

/** A console client's directory (ca-cert.pem, client-cert.pem, client-key.pem). */
export const clientDir = (name: string): string => `${PKI_DIRS.kvmstrap}/clients/${name}`;

/** Every file the host's PKI consists of, CA first; the client set of `client`. */
export function pkiFiles(client = DEFAULT_CLIENT): PkiFile[] {
  const c = clientDir(client);
  return [
    { path: CA_CERT, holds: "cert", role: "ca", use: "ca" },
    { path: CA_KEY, holds: "key", role: "ca", use: "ca" },
    { path: `${PKI_DIRS.libvirt}/servercert.pem`, holds: "cert", role: "server", use: "libvirt" },
    { path: `${PKI_DIRS.libvirt}/private/serverkey.pem`, holds: "key", role: "server", use: "libvirt" },
    { path: `${PKI_DIRS.libvirt}/clientcert.pem`, holds: "cert", role: "client", use: "libvirt" },
    { path: `${PKI_DIRS.libvirt}/private/clientkey.pem`, holds: "key", role: "client", use: "libvirt" },
    ...(["vnc", "spice"] as const).flatMap((use): PkiFile[] => [
      { path: `${PKI_DIRS[use]}/ca-cert.pem`, holds: "cert", role: "ca", use },
      { path: `${PKI_DIRS[use]}/server-cert.pem`, holds: "cert", role: "server", use },
      { path: `${PKI_DIRS[use]}/server-key.pem`, holds: "key", role: "server", use },
    ]),
    { path: `${c}/ca-cert.pem`, holds: "cert", role: "ca", use: "client" },
    { path: `${c}/client-cert.pem`, holds: "cert", role: "client", use: "client" },
    { path: `${c}/client-key.pem`, holds: "key", role: "client", use: "client" },
  ];
}

/** Keys are 0600 (root only: qemu runs as root or reads them before dropping privileges, as
 *  libvirt's docs set it up); certificates are public, 0644. */
export const modeOf = (f: Pick<PkiFile, "holds">): number => (f.holds === "key" ? 0o600 : 0o644);

/** The real path of a host path under a root ("/" for this host). */
export const realPath = (root: string, hostPath: string): string =>
  root === "/" ? hostPath : path.join(root, hostPath);
