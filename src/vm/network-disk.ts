// The one renderer of a VM disk on shared storage: a libvirt network disk (`<disk type="network">`,
// qemu opens the store itself: libnfs, librbd, libiscsi) or a volume of a shared pool
// (`<disk type="volume">`, libvirt translates the pool's volume on each host, so the VM migrates
// without copying while both hosts define the pool under the same name).
//
// Credentials appear only as a libvirt secret's uuid (`<auth><secret type="ceph"|"iscsi" uuid/>`):
// the key or CHAP password is set on the secret at apply (`virsh secret-set-value` from the
// answer's keyFile/passwordFile) and never enters domain XML, a plan, the journal or an event.
//
// For H4 (Ceph RBD): a disk is renderNetworkDiskXml({ protocol: "rbd", name: "POOL/IMAGE",
// hosts: monitors.map((m) => ({ name: m, port: 6789 })), auth: { username: USER (no "client."),
// secretType: "ceph", secretUuid } , target: "vda" }). libvirt 9.0 refuses an rbd pool's volume in a
// domain, so rbd is always a network disk here; secretUuidFor() gives the stable uuid to define the
// secret with (the same on every member, so a migrated domain finds it).
import { createHash } from "node:crypto";
import { xmlEscape } from "../plan/render/libvirt-xml.js";

export type NetworkProtocol = "nfs" | "rbd" | "iscsi";

export interface NetworkDiskHost {
  /** A host name or IP address (IPv6 without brackets: libvirt adds them). */
  name: string;
  port?: number;
}

/** A libvirt secret by uuid; `username` is the cephx user or the CHAP user. */
export interface NetworkDiskAuth {
  username: string;
  secretType: "ceph" | "iscsi";
  secretUuid: string;
}

export interface NetworkDisk {
  protocol: NetworkProtocol;
  /** nfs: the path on the server (export + file); rbd: POOL/IMAGE; iscsi: TARGET-IQN/LUN. */
  name: string;
  hosts: NetworkDiskHost[];
  format?: "raw" | "qcow2";
  auth?: NetworkDiskAuth;
  /** iscsi: the initiator IQN qemu logs in with (libiscsi). */
  initiator?: string;
  /** The guest's device name (vda, vdb...). */
  target: string;
  readonly?: boolean;
  /** nfs: the user and group qemu's libnfs speaks as (libvirt's schema requires them); default root,
   *  so the export must allow root (no_root_squash) or name its owner here. */
  nfsIdentity?: { user: string; group: string };
}

/** A volume of a libvirt pool (iscsi, iscsi-direct, netfs) by pool and volume name. */
export interface PoolVolumeDisk {
  pool: string;
  volume: string;
  format?: "raw" | "qcow2";
  target: string;
  readonly?: boolean;
}

/** A VM's disk on a cluster store, before it has a guest device name (vm-spec.ts carries it). */
export type SharedDisk =
  | { volume: Omit<PoolVolumeDisk, "target"> }
  | { network: Omit<NetworkDisk, "target"> };

const a = (v: string | number) => xmlEscape(String(v));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TARGET = /^(vd|sd|hd)[a-z]{1,2}$/;

/** A stable uuid for the libvirt secret of one store's credentials: the same on every member, so a
 *  domain migrated to another host names a secret that exists there too. */
export function secretUuidFor(cluster: string, store: string): string {
  const h = createHash("sha256").update(`kvmstrap-secret\0${cluster}\0${store}`).digest("hex");
  // RFC 4122 layout, version 4 bits and variant bits set, so libvirt and people read it as a uuid.
  const v = `4${h.slice(13, 16)}`;
  const variant = ((Number.parseInt(h.slice(16, 17), 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}-${h.slice(20, 32)}`;
}

function check(d: { target: string }, what: string): void {
  if (!TARGET.test(d.target)) throw new Error(`${what}: "${d.target}" is not a disk target such as vda`);
}

export function renderNetworkDiskXml(d: NetworkDisk, indent = "    "): string {
  check(d, `network disk ${d.name}`);
  if (!d.hosts.length) throw new Error(`network disk ${d.name}: at least one host`);
  if (d.auth && !UUID.test(d.auth.secretUuid))
    throw new Error(`network disk ${d.name}: the secret is named by its uuid`);
  if (d.auth && (d.auth.secretType === "ceph") !== (d.protocol === "rbd"))
    throw new Error(`network disk ${d.name}: a ${d.auth.secretType} secret does not fit ${d.protocol}`);
  if (d.protocol === "nfs" && d.auth) throw new Error(`network disk ${d.name}: nfs takes no secret`);
  const i2 = `${indent}  `;
  const i3 = `${i2}  `;
  const L = [
    `${indent}<disk type="network" device="disk">`,
    // cache none: the host page cache would hide writes from the other member after a migration.
    `${i2}<driver name="qemu" type="${d.format ?? "raw"}" cache="none"/>`,
  ];
  if (d.auth) {
    L.push(
      `${i2}<auth username="${a(d.auth.username)}">`,
      `${i3}<secret type="${d.auth.secretType}" uuid="${a(d.auth.secretUuid)}"/>`,
      `${i2}</auth>`,
    );
  }
  L.push(`${i2}<source protocol="${d.protocol}" name="${a(d.name)}">`);
  for (const h of d.hosts) {
    L.push(`${i3}<host name="${a(h.name)}"${h.port === undefined ? "" : ` port="${h.port}"`}/>`);
  }
  if (d.protocol === "nfs") {
    const id = d.nfsIdentity ?? { user: "root", group: "root" };
    L.push(`${i3}<identity user="${a(id.user)}" group="${a(id.group)}"/>`);
  }
  if (d.protocol === "iscsi" && d.initiator) {
    L.push(`${i3}<initiator>`, `${i3}  <iqn name="${a(d.initiator)}"/>`, `${i3}</initiator>`);
  }
  L.push(`${i2}</source>`, `${i2}<target dev="${a(d.target)}" bus="virtio"/>`);
  if (d.readonly) L.push(`${i2}<readonly/>`);
  L.push(`${indent}</disk>`);
  return L.join("\n");
}

export function renderPoolVolumeDiskXml(d: PoolVolumeDisk, indent = "    "): string {
  check(d, `volume ${d.pool}/${d.volume}`);
  const i2 = `${indent}  `;
  const L = [
    `${indent}<disk type="volume" device="disk">`,
    `${i2}<driver name="qemu" type="${d.format ?? "raw"}" cache="none"/>`,
    `${i2}<source pool="${a(d.pool)}" volume="${a(d.volume)}"/>`,
    `${i2}<target dev="${a(d.target)}" bus="virtio"/>`,
  ];
  if (d.readonly) L.push(`${i2}<readonly/>`);
  L.push(`${indent}</disk>`);
  return L.join("\n");
}

export function renderSharedDiskXml(d: SharedDisk, target: string, indent = "    "): string {
  return "volume" in d
    ? renderPoolVolumeDiskXml({ ...d.volume, target }, indent)
    : renderNetworkDiskXml({ ...d.network, target }, indent);
}
