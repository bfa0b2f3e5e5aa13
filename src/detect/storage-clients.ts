// Whether this host can reach shared storage through the kernel: the iSCSI initiator (the iscsi_tcp
// module and open-iscsi's iscsiadm) and the NFS client (nfs in /proc/filesystems or as a module,
// and mount.nfs from nfs-common). Where either is missing, a cluster's `mode: auto` store uses the
// user-space path instead (libvirt's iscsi-direct pool, qemu's libnfs disks). null: nothing here says.
import { z } from "zod";
import type { DetectContext } from "./sysfs.js";

export const storageClientsReport = z.object({
  /** iscsi_tcp is loaded, built in, or installed as a module for this kernel. */
  iscsiTcp: z.boolean().nullable(),
  /** open-iscsi's iscsiadm is installed. */
  iscsiadm: z.boolean().nullable(),
  /** The kernel's NFS client: nfs in /proc/filesystems, loaded, or installed as a module. */
  nfsClient: z.boolean().nullable(),
  /** nfs-common's mount.nfs is installed. */
  mountNfs: z.boolean().nullable(),
  /** Where each answer came from. */
  sources: z.record(z.string(), z.string()),
});
export type StorageClientsReport = z.infer<typeof storageClientsReport>;

const SBIN = ["/usr/sbin", "/sbin"];

async function installed(ctx: DetectContext, tool: string): Promise<[boolean | null, string]> {
  for (const dir of SBIN) if (await ctx.fs.exists(`${dir}/${tool}`)) return [true, `${dir}/${tool}`];
  // An empty or absent /usr/sbin says nothing (a fixture of /proc and /sys only).
  const listed = await ctx.fs.readDir("/usr/sbin");
  return [listed?.length ? false : null, "/usr/sbin"];
}

/** Loaded (/sys/module), else listed in this kernel's module lists; null without either. */
async function kernelModule(
  ctx: DetectContext,
  release: string | null,
  module: string,
  path: RegExp,
): Promise<[boolean | null, string]> {
  if (await ctx.fs.exists(`/sys/module/${module}`)) return [true, `/sys/module/${module}`];
  if (!release) return [null, "/proc/sys/kernel/osrelease"];
  const lists = await Promise.all(
    ["modules.builtin", "modules.dep"].map((f) => ctx.fs.readText(`/lib/modules/${release}/${f}`)),
  );
  if (lists.every((l) => l === null)) {
    // No module tree: a kernel without loadable modules has only what /sys/module shows.
    const modules = await ctx.fs.readDir("/sys/module");
    return [modules?.length ? false : null, "/sys/module"];
  }
  return [lists.some((l) => l !== null && path.test(l)), `/lib/modules/${release}`];
}

export async function detectStorageClients(ctx: DetectContext): Promise<StorageClientsReport> {
  const sources: Record<string, string> = {};
  const release = (await ctx.fs.readText("/proc/sys/kernel/osrelease"))?.trim() || null;
  const [iscsiTcp, iscsiTcpSrc] = await kernelModule(ctx, release, "iscsi_tcp", /(^|\/)iscsi_tcp\.ko/m);
  sources.iscsiTcp = iscsiTcpSrc;

  let nfsClient: boolean | null;
  const filesystems = await ctx.fs.readText("/proc/filesystems");
  if (filesystems !== null && /^\S*\s+nfs4?$/m.test(filesystems)) {
    nfsClient = true;
    sources.nfsClient = "/proc/filesystems";
  } else {
    const [mod, src] = await kernelModule(ctx, release, "nfs", /(^|\/)nfs\.ko/m);
    // /proc/filesystems lists every registered filesystem: not there and no module means no client.
    nfsClient = mod ?? (filesystems !== null ? false : null);
    sources.nfsClient = mod === null && filesystems !== null ? "/proc/filesystems" : src;
  }

  const [iscsiadm, iscsiadmSrc] = await installed(ctx, "iscsiadm");
  const [mountNfs, mountNfsSrc] = await installed(ctx, "mount.nfs");
  sources.iscsiadm = iscsiadmSrc;
  sources.mountNfs = mountNfsSrc;
  return { iscsiTcp, iscsiadm, nfsClient, mountNfs, sources };
}
