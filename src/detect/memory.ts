// Memory facts: totals from /proc/meminfo, NUMA nodes with their CPUs, memory and hugepages, and the
// THP and KSM settings that matter for VM density.
import { basename, type DetectContext, intOrWarn, readAttr } from "./sysfs.js";
import type { MemoryReport, NumaNode, Sources } from "./types.js";

export function parseMeminfo(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^([\w()]+):\s+(\d+)/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}

type PageCounts = Record<string, { total: number; free: number }>;

async function readHugepages(ctx: DetectContext, dir: string): Promise<PageCounts> {
  const out: PageCounts = {};
  const sizes = (await ctx.fs.readDir(dir)) ?? [];
  await Promise.all(
    sizes
      .filter((s) => s.startsWith("hugepages-"))
      .map(async (s) => {
        const [nr, free] = await Promise.all([
          ctx.fs.readText(`${dir}/${s}/nr_hugepages`),
          ctx.fs.readText(`${dir}/${s}/free_hugepages`),
        ]);
        const total = intOrWarn(ctx, `${dir}/${s}/nr_hugepages`, nr);
        if (total === null) return;
        out[s.slice("hugepages-".length)] = {
          total,
          free: intOrWarn(ctx, `${dir}/${s}/free_hugepages`, free) ?? 0,
        };
      }),
  );
  return out;
}

async function readNode(ctx: DetectContext, id: number): Promise<NumaNode> {
  const dir = `/sys/devices/system/node/node${id}`;
  const [cpus, meminfo, distance, hugepages] = await Promise.all([
    ctx.fs.readText(`${dir}/cpulist`),
    ctx.fs.readText(`${dir}/meminfo`),
    ctx.fs.readText(`${dir}/distance`),
    readHugepages(ctx, `${dir}/hugepages`),
  ]);
  const total = meminfo ? /MemTotal:\s+(\d+)/.exec(meminfo)?.[1] : undefined;
  return {
    id,
    cpus: cpus?.trim() ?? null,
    memoryKiB: total ? Number(total) : null,
    hugepages,
    distances: distance ? distance.trim().split(/\s+/).map(Number).filter(Number.isFinite) : [],
  };
}

export async function detectMemory(ctx: DetectContext): Promise<MemoryReport> {
  const sources: Sources = {};
  const [meminfoText, nodeEntries, hugepages, thp, ksmRun, ksmSharing] = await Promise.all([
    readAttr(ctx, sources, "totalKiB", "/proc/meminfo"),
    ctx.fs.readDir("/sys/devices/system/node"),
    readHugepages(ctx, "/sys/kernel/mm/hugepages"),
    readAttr(ctx, sources, "thp", "/sys/kernel/mm/transparent_hugepage/enabled"),
    readAttr(ctx, sources, "ksm", "/sys/kernel/mm/ksm/run"),
    ctx.fs.readText("/sys/kernel/mm/ksm/pages_sharing"),
  ]);
  if (meminfoText === null)
    ctx.warnings.push({ path: "/proc/meminfo", message: "missing: memory totals are unknown" });
  const mi = meminfoText ? parseMeminfo(meminfoText) : {};
  if (meminfoText !== null && mi.MemTotal === undefined) {
    ctx.warnings.push({ path: "/proc/meminfo", message: "no MemTotal line" });
  }
  // Without /sys/kernel/mm/hugepages (partial snapshots), the default size still shows in meminfo.
  if (
    Object.keys(hugepages).length === 0 &&
    mi.Hugepagesize !== undefined &&
    mi.HugePages_Total !== undefined
  ) {
    hugepages[`${mi.Hugepagesize}kB`] = { total: mi.HugePages_Total, free: mi.HugePages_Free ?? 0 };
  }
  const nodeIds = (nodeEntries ?? [])
    .map((n) => /^node(\d+)$/.exec(basename(n))?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  if (nodeIds.length) sources.numa = "/sys/devices/system/node";
  const numa = await Promise.all(nodeIds.map((id) => readNode(ctx, id)));
  const thpChoice = thp ? (/\[(\w+)\]/.exec(thp)?.[1] ?? null) : null;
  return {
    totalKiB: mi.MemTotal ?? null,
    availableKiB: mi.MemAvailable ?? null,
    hugepageSizeKiB: mi.Hugepagesize ?? null,
    hugepages,
    numa,
    thp: thpChoice,
    ksm: {
      run: ksmRun === null ? "unknown" : ksmRun === "1" ? "yes" : "no",
      pagesSharing: intOrWarn(ctx, "/sys/kernel/mm/ksm/pages_sharing", ksmSharing),
    },
    sources,
  };
}
