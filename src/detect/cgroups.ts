// cgroup facts libvirt depends on to confine guests: which hierarchy (v1 or v2) and which
// controllers are enabled. v2 lists them in cgroup.controllers; v1 in /proc/cgroups.
import type { DetectContext } from "./sysfs.js";
import type { CgroupReport, Sources } from "./types.js";

export async function detectCgroups(ctx: DetectContext): Promise<CgroupReport> {
  const sources: Sources = {};
  const v2 = await ctx.fs.readText("/sys/fs/cgroup/cgroup.controllers");
  if (v2 !== null) {
    sources.controllers = "/sys/fs/cgroup/cgroup.controllers";
    return { version: 2, controllers: v2.trim().split(/\s+/).filter(Boolean).sort(), sources };
  }
  const v1 = await ctx.fs.readText("/proc/cgroups");
  if (v1 !== null) {
    sources.controllers = "/proc/cgroups";
    const controllers = v1
      .split("\n")
      .filter((l) => l && !l.startsWith("#"))
      .map((l) => l.split(/\s+/))
      .filter((f) => f[3] === "1" && f[0])
      .map((f) => f[0] as string)
      .sort();
    return { version: 1, controllers, sources };
  }
  return { version: null, controllers: [], sources };
}
