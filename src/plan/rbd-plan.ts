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
import { createHash } from "node:crypto";
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

/** The image in the Ceph pool that a base image is converted into once, for every VM cloned from it. */
export function rbdBaseName(imagePath: string): string {
  const slug = (imagePath.split("/").pop() ?? "image").replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 40);
  return `kvmstrap-base-${slug}-${createHash("sha256").update(imagePath).digest("hex").slice(0, 8)}`;
}

/** qemu's rbd: filename, authenticated from the key file (librados reads it: keyfile=). */
export function rbdQemuTarget(store: RbdStore, image: string): string {
  // qemu splits the legacy filename on ':' and a backslash escapes: an IPv6 monitor or a path keeps its colons.
  const esc = (v: string) => v.replace(/[\\:]/g, (c) => `\\${c}`);
  const mons = store.monitors.map((m) => (m.includes(":") ? `[${m}]` : m)).join(",");
  return `rbd:${esc(`${store.pool}/${image}`)}:id=${esc(store.user)}:keyfile=${esc(store.keyFile)}:mon_host=${esc(mons)}`;
}

/**
 * A VM's disk on an rbd store, the counterpart of a file overlay on a base image: the base image
 * converted into the Ceph pool once (qemu-img; several VMs and members share it), then a
 * copy-on-write clone per VM (libvirt's vol-clone on the rbd pool: an rbd snapshot of the base and
 * a clone of it), grown to the VM's size. Undo deletes the clone, then the base with its snapshots.
 * Returns the network disk the VM's domain XML carries (network-disk.ts renders it). Planned on the
 * member that deploys the VM; the checks ask Ceph, so a base already there is not converted again.
 */
export function planRbdVmDisk(
  ctx: PlanContext,
  cluster: string,
  store: RbdStore,
  vm: { name: string; imagePath: string; sizeBytes: number; target?: string; volume?: string },
): NetworkDisk {
  const base = rbdBaseName(vm.imagePath);
  const volume = vm.volume ?? `${vm.name}-root`;
  const baseId = `cluster.storage.${store.name}.base.${base}`;
  if (!ctx.actions.some((a) => a.id === baseId)) {
    planCommand(ctx, {
      id: baseId,
      argv: ["qemu-img", "convert", "-O", "raw", vm.imagePath, rbdQemuTarget(store, base)],
      undo: ["virsh", "vol-delete", "--delete-snapshots", "--pool", store.name, base],
      // Asked of Ceph itself, not of libvirt's cached volume list: another member may have made it.
      check: ["qemu-img", "info", rbdQemuTarget(store, base)],
      effect: "none",
      summary: `base image ${vm.imagePath} into Ceph pool ${store.pool} as ${base} (once, for every VM on it)`,
    });
  }
  planCommand(ctx, {
    id: `vm.${vm.name}.pool-refresh`,
    argv: ["virsh", "pool-refresh", store.name],
    undo: null,
    effect: "none",
    summary: `pool ${store.name}: list the images again (a base another member converted in)`,
  });
  planCommand(ctx, {
    id: `vm.${vm.name}.disk-clone`,
    argv: ["virsh", "vol-clone", "--pool", store.name, base, volume],
    undo: ["virsh", "vol-delete", "--pool", store.name, volume],
    check: ["qemu-img", "info", rbdQemuTarget(store, volume)],
    effect: "none",
    summary: `VM ${vm.name}: its disk ${store.pool}/${volume}, a copy-on-write clone of ${base}`,
  });
  planCommand(ctx, {
    id: `vm.${vm.name}.disk-size`,
    argv: ["virsh", "vol-resize", "--pool", store.name, volume, String(vm.sizeBytes)],
    undo: null,
    effect: "none",
    summary: `VM ${vm.name}: its disk grown to ${vm.sizeBytes} bytes (the clone's undo removes it)`,
  });
  return rbdDisk(cluster, store, volume, vm.target ?? "vda");
}

/** The rbd stores of the answer's cluster: section (iSCSI and NFS: shared-storage-plan.ts). */
export function planRbdStorage(ctx: PlanContext): void {
  const cluster = ctx.answer.cluster;
  if (!cluster) return;
  for (const store of cluster.storage) if (store.type === "rbd") planRbdStore(ctx, cluster.name, store);
}
