// A VM whose disk is a volume of a cluster store (vms[].store) gets its image there from the plan.
// On an iSCSI or NFS store it is written onto that volume, once, by `kvmstrap vm fill-disk`
// (src/vm/fill-disk.ts): only while the volume is blank, so a run again, another member's run, or a
// volume the store's admin filled leaves it as it is. On RBD the volume is a copy-on-write clone of
// the image converted into Ceph once (rbd-plan.ts's planRbdVmDisk), made unless it exists.
//
// One member writes: a VM that is not HA is deployed by its `member:` only; an HA VM is planned on
// every member (pacemaker places it), so the cluster's first member writes its disk, never two at a
// time. The action has no inverse: undo leaves the guest's disk as it is (it may hold the guest's data
// by then), and the volume was the store's before.
import path from "node:path";
import { selfMember } from "../answer/rules/cluster.js";
import type { Answer, VmEntry } from "../answer/schema.js";
import type { SharedStore } from "../answer/schema-cluster.js";
import type { HostReport } from "../detect/types.js";
import { describeTarget, type FillTarget } from "../vm/fill-disk.js";
import { readIndexSync } from "../vm/image-index.js";
import { DEFAULT_CACHE_DIR } from "../vm/images.js";
import { type PlanContext, planCommand } from "./context.js";
import { planRbdVmDisk } from "./rbd-plan.js";
import { initiatorIqn, iscsiMode, nfsMode, nfsMountPoint } from "./shared-storage-plan.js";

const GiB = 2 ** 30;

/** The image's file, as a deploy finds it (resolveImage): a path as given, else the cache's entry. */
function imageFile(image: string, cacheDir: string): string | null {
  if (image.includes("/")) return image;
  const cached = readIndexSync(cacheDir)[image];
  return cached ? path.join(cacheDir, cached.file) : null;
}

/** A LUN as libvirt names it in an iSCSI pool: unit:BUS:TARGET:LUN. */
const LUN_VOLUME = /^unit:\d+:\d+:(\d+)$/;

/** Where the VM's volume is, as qemu opens it on this member; null for an iSCSI volume that is not a LUN. */
export function fillTargetFor(
  store: Exclude<SharedStore, { type: "rbd" }>,
  volume: string,
  cluster: string,
  /** This member's host name (cluster.members[].host): its initiator IQN derives from it. */
  self: string,
  report: HostReport,
): FillTarget | null {
  if (store.type === "nfs") {
    if (nfsMode(store, report) === "kernel")
      return { driver: "file", filename: `${nfsMountPoint(store.name)}/${volume}` };
    return { driver: "nfs", server: store.server, path: `${store.export.replace(/\/+$/, "")}/${volume}` };
  }
  const lun = LUN_VOLUME.exec(volume)?.[1];
  if (lun === undefined) return null;
  if (iscsiMode(store, report) === "kernel")
    return {
      driver: "host_device",
      filename: `/dev/disk/by-path/ip-${store.portal}:${store.port}-iscsi-${store.target}-lun-${lun}`,
    };
  return {
    driver: "iscsi",
    portal: `${store.portal}:${store.port}`,
    target: store.target,
    lun: Number(lun),
    ...(store.chap ? { user: store.chap.username } : {}),
    initiatorName: initiatorIqn(store, cluster, self),
  };
}

/** Plans the fill of one VM's store volume, when this member is the one that writes it. */
export function planStoreDiskFill(
  ctx: PlanContext,
  answer: Answer,
  vm: VmEntry & { diskGiB: number },
  report: HostReport,
  o: { cacheDir?: string } = {},
): void {
  const c = answer.cluster;
  const store = c?.storage.find((s) => s.name === vm.store?.name);
  if (!c || !store || !vm.store) return;
  const self = selfMember(c, report)?.host;
  const ha = (c.ha?.vms ?? []).some((v) => v.vm === vm.name);
  if (!self || (ha && self !== c.members[0]?.host)) return;
  if (store.type === "rbd") {
    const imagePath = imageFile(vm.image, o.cacheDir ?? DEFAULT_CACHE_DIR);
    if (imagePath === null) return; // the rule set reported the unknown image
    planRbdVmDisk(ctx, c.name, store, {
      name: vm.name,
      imagePath,
      sizeBytes: Math.round(vm.diskGiB * GiB),
      volume: vm.store.volume,
    });
    return;
  }
  const target = fillTargetFor(store, vm.store.volume, c.name, self, report);
  if (target === null) return;
  const secret = store.type === "iscsi" && store.chap ? ["--secret-file", store.chap.passwordFile] : [];
  const size =
    target.driver === "nfs" || target.driver === "file"
      ? ["--size", String(Math.round(vm.diskGiB * GiB))]
      : [];
  planCommand(ctx, {
    id: `vm.${vm.name}.disk-fill`,
    argv: [
      "kvmstrap",
      "vm",
      "fill-disk",
      "--image",
      vm.image,
      "--cache",
      o.cacheDir ?? DEFAULT_CACHE_DIR,
      "--disk",
      JSON.stringify(target),
      ...secret,
      ...size,
    ],
    undo: null,
    effect: "none",
    summary: `VM ${vm.name}: its image ${vm.image} onto ${describeTarget(target)} (${store.name}), once, while that disk is blank`,
  });
}
