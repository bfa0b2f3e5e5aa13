// An NFS export for the cluster tests where the kernel has no NFS client: nfs-ganesha (user space,
// FSAL VFS, NFSv3 with rpcbind) in a storage namespace (store-host.ts) on the migration network, the
// guests' disks then qemu libnfs network disks (shared-nfs and the walk-through).
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { StoreHost } from "./store-host.js";
import { until } from "./store-host.js";

/** NFSv3 only (libnfs's default), no NLM or rquota, root not squashed (qemu runs as root here). */
export const ganeshaConf = (dir: string) => `NFS_CORE_PARAM {
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSV4 { Graceless = true; }
EXPORT {
  Export_Id = 1;
  Path = ${dir};
  Pseudo = ${dir};
  Access_Type = RW;
  Squash = No_Root_Squash;
  Protocols = 3;
  Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
`;

/** Exports `dir` (made if missing) from the store host; resolves once mountd and NFSv3 answer. */
export async function startNfsExport(store: StoreHost, dir: string, work: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const conf = path.join(work, "ganesha.conf");
  await writeFile(conf, ganeshaConf(dir));
  store.daemon("rpcbind", ["-f", "-w"]);
  await until("rpcbind", 10_000, async () => (await store.exec("rpcinfo", ["-p"])).includes("portmapper"));
  store.daemon("ganesha.nfsd", [
    "-F",
    "-L",
    path.join(work, "ganesha.log"),
    "-f",
    conf,
    "-p",
    "/run/ganesha.pid",
  ]);
  await until("ganesha's mountd and nfs", 20_000, async () => {
    const p = await store.exec("rpcinfo", ["-p"]);
    return p.includes("mountd") && /100003\s+3\s+tcp/.test(p);
  });
}
