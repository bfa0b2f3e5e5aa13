// What the host's kernel offers virtual switches: the openvswitch module (else Open vSwitch runs its
// datapath in user space, datapath_type=netdev) and bridge VLAN filtering (a VLAN-aware Linux bridge
// needs it; some kernels are built without it). Read from the kernel's own build config and module
// lists, then from a live bridge's sysfs; never assumed. null: nothing here says.
import { gunzipSync } from "node:zlib";
import { z } from "zod";
import type { DetectContext } from "./sysfs.js";

export const vswitchReport = z.object({
  /** The openvswitch module is loaded, built in, or installed for this kernel. */
  ovsModule: z.boolean().nullable(),
  /** The kernel supports bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING). */
  bridgeVlanFiltering: z.boolean().nullable(),
  /** Where each answer came from, for the report. */
  sources: z.record(z.string(), z.string()),
});
export type VswitchReport = z.infer<typeof vswitchReport>;

/** /proc/config.gz is a few tens of KiB; anything far bigger is not a kernel config. */
const MAX_CONFIG = 4 * 2 ** 20;

async function kernelConfig(ctx: DetectContext, release: string | null) {
  const plain = release ? await ctx.fs.readText(`/boot/config-${release}`) : null;
  if (plain !== null) return { text: plain, source: `/boot/config-${release}` };
  const gz = await readAllBytes(ctx, "/proc/config.gz");
  if (!gz?.length) return null;
  try {
    const text = gunzipSync(gz, { maxOutputLength: 16 * MAX_CONFIG }).toString("utf8");
    return { text, source: "/proc/config.gz" };
  } catch {
    return null;
  }
}

/**
 * A binary file of unknown size (procfs reports 0) through the port's exact-length reads: whole
 * chunks, then the tail's length found by halving. Bounded by MAX_CONFIG.
 */
async function readAllBytes(ctx: DetectContext, file: string): Promise<Buffer | null> {
  const CHUNK = 4096;
  const parts: Buffer[] = [];
  let offset = 0;
  for (; offset < MAX_CONFIG; offset += CHUNK) {
    const b = await ctx.fs.readBytes(file, offset, CHUNK);
    if (!b) break;
    parts.push(b);
  }
  if (offset >= MAX_CONFIG) return null;
  let lo = 0;
  let hi = CHUNK - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (await ctx.fs.readBytes(file, offset, mid)) lo = mid;
    else hi = mid - 1;
  }
  if (lo > 0) parts.push((await ctx.fs.readBytes(file, offset, lo)) ?? Buffer.alloc(0));
  return parts.length ? Buffer.concat(parts) : null;
}

/** y or m: built; "is not set" or absent from a config that has its parent: not built. */
function configured(text: string, key: string): boolean | null {
  const m = new RegExp(`^(?:${key}=([ym])|# ${key} is not set)$`, "m").exec(text);
  if (m) return m[1] !== undefined;
  return null;
}

export async function detectVswitch(ctx: DetectContext): Promise<VswitchReport> {
  const sources: Record<string, string> = {};
  const release = (await ctx.fs.readText("/proc/sys/kernel/osrelease"))?.trim() || null;
  const config = await kernelConfig(ctx, release);

  let ovsModule: boolean | null = null;
  if (await ctx.fs.exists("/sys/module/openvswitch")) {
    ovsModule = true;
    sources.ovsModule = "/sys/module/openvswitch";
  } else {
    const lists = release
      ? await Promise.all(
          ["modules.builtin", "modules.dep"].map((f) => ctx.fs.readText(`/lib/modules/${release}/${f}`)),
        )
      : [];
    if (lists.some((l) => l !== null && /(^|\/)openvswitch\.ko/m.test(l))) {
      ovsModule = true;
      sources.ovsModule = `/lib/modules/${release}`;
    } else if (config) {
      // A config saying "m" while no module list names it: built, but not installed here.
      ovsModule = configured(config.text, "CONFIG_OPENVSWITCH") === true && lists.every((l) => l === null);
      sources.ovsModule = config.source;
    } else if (lists.some((l) => l !== null)) {
      ovsModule = false;
      sources.ovsModule = `/lib/modules/${release}`;
    }
  }

  let bridgeVlanFiltering: boolean | null = null;
  if (config) {
    const bridged = configured(config.text, "CONFIG_BRIDGE");
    const filtering = configured(config.text, "CONFIG_BRIDGE_VLAN_FILTERING");
    // The option exists only where 802.1Q is on: a config with bridges and no line for it has none.
    bridgeVlanFiltering = filtering ?? (bridged === null ? null : false);
    sources.bridgeVlanFiltering = config.source;
  }
  if (bridgeVlanFiltering === null) {
    // A live bridge has the attribute exactly when the kernel supports filtering.
    for (const name of (await ctx.fs.readDir("/sys/class/net")) ?? []) {
      if (!(await ctx.fs.exists(`/sys/class/net/${name}/bridge`))) continue;
      bridgeVlanFiltering = await ctx.fs.exists(`/sys/class/net/${name}/bridge/vlan_filtering`);
      sources.bridgeVlanFiltering = `/sys/class/net/${name}/bridge`;
      break;
    }
  }
  return { ovsModule, bridgeVlanFiltering, sources };
}
