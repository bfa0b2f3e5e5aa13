// The cluster's iSCSI and NFS stores on one member, as plan actions with inverses (Ceph RBD is
// planned beside this, by its own planner). Every member runs the same actions, so a pool has the
// same name everywhere and a VM on it migrates without copying its disk.
//
// - iSCSI: libvirt's "iscsi" pool (open-iscsi in the kernel) where the host has iscsi_tcp and
//   iscsiadm, else "iscsi-direct" (libiscsi in libvirt and qemu, no kernel module): defined, started,
//   autostarted. CHAP: a private libvirt secret with a stable uuid, its value set from the answer's
//   passwordFile by `virsh secret-set-value --file` at apply; the plan carries the file's path only.
// - NFS: a netfs pool mounted at the same path on every member where the kernel has an NFS client
//   (and mount.nfs); else nothing on the host: each VM disk is a qemu libnfs network disk.
// `mode: auto` decides from the host report (detect's storageClients); a forced mode the host cannot
// serve is the rule set's finding, not this planner's.
import { kernelClients } from "../answer/rules/cluster.js";
import type { SharedStore } from "../answer/schema-cluster.js";
import type { HostReport } from "../detect/types.js";
import { secretUuidFor } from "../vm/network-disk.js";
import type { PlanContext } from "./context.js";
import { planCommand, planFile } from "./context.js";
import { renderIscsiPoolXml, renderNetfsPoolXml, renderSecretXml } from "./render/shared-pool-xml.js";

type IscsiStore = Extract<SharedStore, { type: "iscsi" }>;
type NfsStore = Extract<SharedStore, { type: "nfs" }>;

export const sharedPoolXmlPath = (name: string) => `/etc/kvmstrap/libvirt/pool-${name}.xml`;
export const secretXmlPath = (name: string) => `/etc/kvmstrap/libvirt/secret-${name}.xml`;
/** Where a kernel-mode NFS store is mounted on every member. */
export const nfsMountPoint = (name: string) => `/var/lib/kvmstrap/shared/${name}`;

/** iSCSI through the kernel only where the report says both the module and iscsiadm are there. */
export function iscsiMode(store: IscsiStore, report: HostReport): "kernel" | "direct" {
  if (store.mode !== "auto") return store.mode;
  return kernelClients(report).iscsi === true ? "kernel" : "direct";
}

/** NFS through the kernel only where the report says it has the client and mount.nfs. */
export function nfsMode(store: NfsStore, report: HostReport): "kernel" | "libnfs" {
  if (store.mode !== "auto") return store.mode;
  return kernelClients(report).nfs === true ? "kernel" : "libnfs";
}

/** The initiator IQN a member logs in with: the answer's, else one per cluster and member (two
 *  members sharing one IQN would take over each other's sessions on the target). */
export function initiatorIqn(store: IscsiStore, cluster: string, host: string): string {
  return store.initiator ?? `iqn.2026-12.org.kvmstrap:${cluster}.${host}`.toLowerCase();
}

function virsh(
  ctx: PlanContext,
  id: string,
  a: { args: string[]; undo: string[] | null; check?: string[] | null; summary: string },
): void {
  planCommand(ctx, {
    id,
    argv: ["virsh", ...a.args],
    undo: a.undo,
    check: a.check ?? null,
    effect: "none",
    summary: a.summary,
  });
}

/** Write the pool's XML, define, (build,) start and autostart it; each undone in reverse. */
function planPool(ctx: PlanContext, name: string, xml: string, what: string, build: boolean): void {
  const id = `cluster.storage.${name}`;
  const path = sharedPoolXmlPath(name);
  planFile(ctx, {
    id: `${id}.xml`,
    path,
    content: xml,
    effect: "none",
    summary: `libvirt pool ${name} (${what})`,
  });
  virsh(ctx, `${id}.define`, {
    args: ["pool-define", path],
    undo: ["virsh", "pool-undefine", name],
    check: ["virsh", "pool-info", name],
    summary: `define pool ${name}`,
  });
  if (build) {
    virsh(ctx, `${id}.build`, {
      args: ["pool-build", name],
      undo: null,
      summary: `create the mount point of ${name}`,
    });
  }
  virsh(ctx, `${id}.start`, {
    args: ["pool-start", name],
    undo: ["virsh", "pool-destroy", name],
    summary: `start pool ${name} (${what})`,
  });
  virsh(ctx, `${id}.autostart`, {
    args: ["pool-autostart", name],
    undo: ["virsh", "pool-autostart", "--disable", name],
    summary: `start pool ${name} at boot`,
  });
}

function planChapSecret(ctx: PlanContext, cluster: string, store: IscsiStore): string | undefined {
  if (!store.chap) return undefined;
  const uuid = secretUuidFor(cluster, store.name);
  const id = `cluster.storage.${store.name}.secret`;
  const path = secretXmlPath(store.name);
  planFile(ctx, {
    id: `${id}.xml`,
    path,
    content: renderSecretXml({
      uuid,
      usage: "iscsi",
      usageName: `kvmstrap-${store.name}`,
      description: `CHAP password of ${store.chap.username} for ${store.target}`,
    }),
    effect: "none",
    summary: `libvirt secret for ${store.name}'s CHAP password (no value in the file)`,
  });
  virsh(ctx, `${id}.define`, {
    args: ["secret-define", path],
    undo: ["virsh", "secret-undefine", uuid],
    check: ["virsh", "secret-dumpxml", uuid],
    summary: `define secret ${uuid}`,
  });
  // --plain: the file holds the password itself; libvirt reads it at apply, the plan only names it.
  virsh(ctx, `${id}.value`, {
    args: ["secret-set-value", "--secret", uuid, "--file", store.chap.passwordFile, "--plain"],
    undo: null,
    summary: `set secret ${uuid} from ${store.chap.passwordFile}`,
  });
  return uuid;
}

/** The iSCSI and NFS stores of the answer's cluster: section, on the member `host`. */
export function planSharedStorage(ctx: PlanContext, host: string): void {
  const cluster = ctx.answer.cluster;
  if (!cluster) return;
  for (const store of cluster.storage) {
    if (store.type === "iscsi") {
      const mode = iscsiMode(store, ctx.report);
      const secretUuid = planChapSecret(ctx, cluster.name, store);
      const xml = renderIscsiPoolXml({
        name: store.name,
        mode,
        portal: store.portal,
        port: store.port,
        target: store.target,
        initiator: initiatorIqn(store, cluster.name, host),
        ...(store.chap && secretUuid ? { chap: { username: store.chap.username, secretUuid } } : {}),
      });
      planPool(ctx, store.name, xml, mode === "kernel" ? "iscsi, kernel initiator" : "iscsi-direct", false);
    } else if (store.type === "nfs" && nfsMode(store, ctx.report) === "kernel") {
      const xml = renderNetfsPoolXml({
        name: store.name,
        server: store.server,
        export: store.export,
        mountPoint: nfsMountPoint(store.name),
      });
      planPool(ctx, store.name, xml, "netfs, kernel NFS client", true);
    }
    // nfs in libnfs mode: no pool on the host; VM disks are network disks (vm-plan). rbd: its own planner.
  }
}
