// libvirt XML for the cluster's shared stores: an iSCSI pool (open-iscsi in the kernel: LUNs become
// /dev/disk/by-path devices) or an iscsi-direct pool (libiscsi inside libvirt and qemu: no kernel
// module, disks become network disks), an NFS netfs pool (mounted by the kernel's NFS client), and
// the libvirt secret that holds a CHAP password or a cephx key. A secret's value never appears here:
// it is set on the secret by uuid when the plan is applied (virsh secret-set-value --file).
// Checked against libvirt's own RelaxNG schemas in the tests.
import { xmlEscape as e } from "./libvirt-xml.js";

export interface IscsiPoolSpec {
  name: string;
  /** kernel: libvirt's "iscsi" pool (iscsiadm); direct: "iscsi-direct" (libiscsi). */
  mode: "kernel" | "direct";
  portal: string;
  port: number;
  target: string;
  initiator: string;
  chap?: { username: string; secretUuid: string };
}

export function renderIscsiPoolXml(p: IscsiPoolSpec): string {
  const L = [
    `<pool type="${p.mode === "direct" ? "iscsi-direct" : "iscsi"}">`,
    `  <name>${e(p.name)}</name>`,
    "  <source>",
    `    <host name="${e(p.portal)}" port="${p.port}"/>`,
    `    <device path="${e(p.target)}"/>`,
    "    <initiator>",
    `      <iqn name="${e(p.initiator)}"/>`,
    "    </initiator>",
  ];
  if (p.chap) {
    L.push(
      `    <auth type="chap" username="${e(p.chap.username)}">`,
      `      <secret uuid="${e(p.chap.secretUuid)}"/>`,
      "    </auth>",
    );
  }
  L.push("  </source>");
  // The kernel pool's LUNs appear as stable by-path links; iscsi-direct has no local path at all.
  if (p.mode === "kernel") L.push("  <target>", "    <path>/dev/disk/by-path</path>", "  </target>");
  L.push("</pool>");
  return `${L.join("\n")}\n`;
}

export interface NetfsPoolSpec {
  name: string;
  server: string;
  export: string;
  /** Where every member mounts the export (the same path, so file disks migrate). */
  mountPoint: string;
}

export function renderNetfsPoolXml(p: NetfsPoolSpec): string {
  return `${[
    `<pool type="netfs">`,
    `  <name>${e(p.name)}</name>`,
    "  <source>",
    `    <host name="${e(p.server)}"/>`,
    `    <dir path="${e(p.export)}"/>`,
    `    <format type="nfs"/>`,
    "  </source>",
    "  <target>",
    `    <path>${e(p.mountPoint)}</path>`,
    "  </target>",
    "</pool>",
  ].join("\n")}\n`;
}

/** A private, persistent libvirt secret: its value can be set and used but never read back. */
export function renderSecretXml(s: {
  uuid: string;
  usage: "iscsi" | "ceph";
  /** The usage's name: the iSCSI target (usage iscsi) or "client.USER secret" (usage ceph). */
  usageName: string;
  description: string;
}): string {
  const usage =
    s.usage === "iscsi" ? `    <target>${e(s.usageName)}</target>` : `    <name>${e(s.usageName)}</name>`;
  return `${[
    `<secret ephemeral="no" private="yes">`,
    `  <uuid>${e(s.uuid)}</uuid>`,
    `  <description>${e(s.description)}</description>`,
    `  <usage type="${s.usage}">`,
    usage,
    "  </usage>",
    "</secret>",
  ].join("\n")}\n`;
}
