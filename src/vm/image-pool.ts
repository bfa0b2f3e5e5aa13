// The image cache as a libvirt storage pool ("kvmstrap-images", type dir, over the cache directory),
// so virsh, virt-manager and libvirt volume APIs see the read-only bases. Best effort: when libvirtd
// cannot be reached the cache still works on its own and the caller says so.
import { renderPoolXml } from "../plan/render/libvirt-xml.js";
import { type Libvirt, LibvirtError } from "./libvirt.js";

export const IMAGE_POOL = "kvmstrap-images";

export type PoolOutcome =
  | { pool: string; state: "defined" | "refreshed" }
  | { pool: string; state: "unreachable"; detail: string };

export async function ensureImagePool(
  libvirt: Libvirt,
  cacheDir: string,
  pool = IMAGE_POOL,
): Promise<PoolOutcome> {
  try {
    if (await libvirt.poolExists(pool)) {
      await libvirt.poolRefresh(pool).catch(async (e) => {
        // A defined but stopped pool cannot refresh: start it (which scans it) instead.
        if (e instanceof LibvirtError && e.code === "invalid-state") await libvirt.poolStart(pool);
        else throw e;
      });
      return { pool, state: "refreshed" };
    }
    await libvirt.poolDefine(renderPoolXml({ name: pool, type: "dir", path: cacheDir }));
    await libvirt.poolStart(pool);
    return { pool, state: "defined" };
  } catch (e) {
    if (e instanceof LibvirtError && e.code === "connect")
      return { pool, state: "unreachable", detail: e.message };
    throw e;
  }
}
