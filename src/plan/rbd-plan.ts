// The cluster's Ceph RBD stores on one member, as plan actions with inverses. Every member runs the
// same actions, so the secret has the same uuid everywhere and a VM's network disk (which names it)
// finds it on whichever member the VM migrates to.
//
// - The cephx key: a private libvirt secret of usage type ceph, defined from an XML file that holds no
//   value, its uuid derived from the cluster and store names (secretUuidFor). Its value is set by
//   `virsh secret-set-value --file KEYFILE` at apply: virsh reads the key from the file, so it never
//   appears in the plan, the journal, an event, a process list or domain XML. The file holds the key
//   as `ceph auth get-key client.USER` prints it (base64; virsh decodes it).
// - A libvirt rbd pool on the same Ceph pool, with the same secret: `virsh vol-list`, vol-create-as
//   and vol-upload reach the images without a key on any command line. VMs never use it as a disk
//   source (libvirt 9.0 refuses an rbd pool's volume in a domain): their disks are network disks
//   (rbdDisk below, rendered by src/vm/network-disk.ts).
import type { SharedStore } from "../answer/schema-cluster.js";
import { type NetworkDisk, secretUuidFor } from "../vm/network-disk.js";
import { type PlanContext, planCommand, planFile } from "./context.js";
import { xmlEscape } from "./render/libvirt-xml.js";
import { renderSecretXml } from "./render/shared-pool-xml.js";
import { secretXmlPath, sharedPoolXmlPath } from "./shared-storage-plan.js";

export type RbdStore = Extract<SharedStore, { type: "rbd" }>;

/** The libvirt pool over the Ceph pool, authenticated by the store's secret. */
export function renderRbdPoolXml(store: RbdStore, secretUuid: string): string {
  const e = xmlEscape;
  return `${[
    `<pool type="rbd">`,
    `  <name>${e(store.name)}</name>`,
    "  <source>",
    `    <name>${e(store.pool)}</name>`,
    ...store.monitors.map((m) => `    <host name="${e(m)}"/>`),
    `    <auth type="ceph" username="${e(store.user)}">`,
    `      <secret uuid="${e(secretUuid)}"/>`,
    "    </auth>",
    "  </source>",
    "</pool>",
  ].join("\n")}\n`;
}

/** A VM disk on the store: image IMAGE of the Ceph pool, as the network disk every member opens. */
export function rbdDisk(cluster: string, store: RbdStore, image: string, target: string): NetworkDisk {
  return {
    protocol: "rbd",
    name: `${store.pool}/${image}`,
    hosts: store.monitors.map((m) => ({ name: m })),
    auth: { username: store.user, secretType: "ceph", secretUuid: secretUuidFor(cluster, store.name) },
    target,
  };
}

export function planRbdStore(ctx: PlanContext, cluster: string, store: RbdStore): void {
  const id = `cluster.storage.${store.name}`;
  const uuid = secretUuidFor(cluster, store.name);
  const secretXml = secretXmlPath(store.name);
  planFile(ctx, {
    id: `${id}.secret.xml`,
    path: secretXml,
    content: renderSecretXml({
      uuid,
      usage: "ceph",
      // Unique among the host's ceph secrets: two stores may use the same cephx user.
      usageName: `kvmstrap ${cluster} ${store.name} client.${store.user}`,
      description: `cephx key of client.${store.user} for Ceph pool ${store.pool} (store ${store.name})`,
    }),
    effect: "none",
    summary: `libvirt secret for ${store.name}'s cephx key (no value in the file)`,
  });
  planCommand(ctx, {
    id: `${id}.secret.define`,
    argv: ["virsh", "secret-define", secretXml],
    undo: ["virsh", "secret-undefine", uuid],
    check: ["virsh", "secret-dumpxml", uuid],
    effect: "none",
    summary: `define secret ${uuid} (ceph, client.${store.user})`,
  });
  // Set on every run (no check): a rotated key in the file reaches libvirt on the next apply, and
  // reading the value back to compare would bring the key into kvmstrap's memory and output.
  planCommand(ctx, {
    id: `${id}.secret.value`,
    argv: ["virsh", "secret-set-value", "--secret", uuid, "--file", store.keyFile],
    undo: null,
    effect: "none",
    summary: `set secret ${uuid} from ${store.keyFile} (read by virsh; the key is not in this plan)`,
  });
  const poolXml = sharedPoolXmlPath(store.name);
  planFile(ctx, {
    id: `${id}.pool.xml`,
    path: poolXml,
    content: renderRbdPoolXml(store, uuid),
    effect: "none",
    summary: `libvirt pool ${store.name} (rbd ${store.pool} on ${store.monitors.join(", ")})`,
  });
  planCommand(ctx, {
    id: `${id}.pool.define`,
    argv: ["virsh", "pool-define", poolXml],
    undo: ["virsh", "pool-undefine", store.name],
    check: ["virsh", "pool-info", store.name],
    effect: "none",
    summary: `define pool ${store.name}`,
  });
  planCommand(ctx, {
    id: `${id}.pool.start`,
    argv: ["virsh", "pool-start", store.name],
    undo: ["virsh", "pool-destroy", store.name],
    // Fails on an inactive pool and only re-lists an active one's images: in place when it succeeds.
    check: ["virsh", "pool-refresh", store.name],
    effect: "none",
    summary: `start pool ${store.name} (connects to the monitors with the secret)`,
  });
  planCommand(ctx, {
    id: `${id}.pool.autostart`,
    argv: ["virsh", "pool-autostart", store.name],
    undo: ["virsh", "pool-autostart", "--disable", store.name],
    effect: "none",
    summary: `start pool ${store.name} at boot`,
  });
}

/** The rbd stores of the answer's cluster: section (iSCSI and NFS: shared-storage-plan.ts). */
export function planRbdStorage(ctx: PlanContext): void {
  const cluster = ctx.answer.cluster;
  if (!cluster) return;
  for (const store of cluster.storage) if (store.type === "rbd") planRbdStore(ctx, cluster.name, store);
}
