// CPU facts: vendor, topology, virtualization flags and whether firmware has locked VT-x/AMD-V off.
// The flags come from /proc/cpuinfo; the firmware lock from the MSRs kvm-ok reads, through
// /dev/cpu/0/msr (needs the msr module and root; "unknown" otherwise, never a guess).
import type { DetectContext } from "./sysfs.js";
import type { CpuReport, FirmwareVirtLock, Sources } from "./types.js";

const IA32_FEATURE_CONTROL = 0x3a;
const AMD_VM_CR = 0xc0010114;

type CpuInfoBlock = Record<string, string>;

export function parseCpuInfo(text: string): CpuInfoBlock[] {
  const blocks: CpuInfoBlock[] = [];
  for (const chunk of text.split(/\n\s*\n/)) {
    const block: CpuInfoBlock = {};
    for (const line of chunk.split("\n")) {
      const i = line.indexOf(":");
      if (i > 0) block[line.slice(0, i).trim()] = line.slice(i + 1).trim();
    }
    if (block.processor !== undefined) blocks.push(block);
  }
  return blocks;
}

export async function detectCpu(ctx: DetectContext): Promise<CpuReport> {
  const sources: Sources = {};
  const [cpuinfo, online, offline] = await Promise.all([
    ctx.fs.readText("/proc/cpuinfo"),
    ctx.fs.readText("/sys/devices/system/cpu/online"),
    ctx.fs.readText("/sys/devices/system/cpu/offline"),
  ]);
  if (online !== null) sources.onlineCpus = "/sys/devices/system/cpu/online";
  if (offline !== null) sources.offlineCpus = "/sys/devices/system/cpu/offline";

  const blocks = cpuinfo ? parseCpuInfo(cpuinfo) : [];
  if (cpuinfo === null)
    ctx.warnings.push({ path: "/proc/cpuinfo", message: "missing: CPU facts are unknown" });
  else if (blocks.length === 0)
    ctx.warnings.push({ path: "/proc/cpuinfo", message: "no processor entries found" });
  else
    for (const f of ["vendor", "model", "flags", "sockets", "cores", "threads"]) sources[f] = "/proc/cpuinfo";

  const first = blocks[0] ?? {};
  const flags = (first.flags ?? "").split(/\s+/).filter(Boolean);
  const has = (f: string) => flags.includes(f);
  const vendor = first.vendor_id ?? null;
  const virt = has("vmx") ? "vmx" : has("svm") ? "svm" : null;
  const slp = virt === "vmx" ? has("ept") : virt === "svm" ? has("npt") : null;

  const packages = new Set(blocks.map((b) => b["physical id"] ?? "0"));
  const cores = new Set(blocks.map((b) => `${b["physical id"] ?? "0"}:${b["core id"] ?? b.processor}`));

  const lock = await readFirmwareLock(ctx, vendor, sources);
  return {
    vendor,
    model: first["model name"] ?? null,
    architecture: "x86_64",
    sockets: blocks.length ? packages.size : null,
    cores: blocks.length ? cores.size : null,
    threads: blocks.length ? blocks.length : null,
    onlineCpus: online?.trim() ?? null,
    offlineCpus: offline?.trim() || null,
    flags,
    virt,
    secondLevelPaging: slp === null ? "unknown" : slp ? "yes" : "no",
    pdpe1gb: has("pdpe1gb"),
    hypervisor: has("hypervisor"),
    firmwareVirt: lock.state,
    firmwareVirtDetail: lock.detail,
    sources,
  };
}

async function readFirmwareLock(
  ctx: DetectContext,
  vendor: string | null,
  sources: Sources,
): Promise<{ state: FirmwareVirtLock; detail: string }> {
  const path = "/dev/cpu/0/msr";
  if (vendor === "GenuineIntel") {
    const b = await ctx.fs.readBytes(path, IA32_FEATURE_CONTROL, 8);
    if (!b) return { state: "unknown", detail: `${path} not readable (load the msr module and run as root)` };
    sources.firmwareVirt = `${path}@0x3a`;
    const v = b.readBigUInt64LE(0);
    const locked = (v & 1n) === 1n;
    const vmxOutsideSmx = (v & 4n) === 4n;
    if (locked && !vmxOutsideSmx)
      return { state: "locked-off", detail: "IA32_FEATURE_CONTROL is locked with VMX off" };
    return {
      state: "enabled",
      detail: locked ? "IA32_FEATURE_CONTROL is locked with VMX on" : "IA32_FEATURE_CONTROL is unlocked",
    };
  }
  if (vendor === "AuthenticAMD" || vendor === "HygonGenuine") {
    const b = await ctx.fs.readBytes(path, AMD_VM_CR, 8);
    if (!b) return { state: "unknown", detail: `${path} not readable (load the msr module and run as root)` };
    sources.firmwareVirt = `${path}@0xc0010114`;
    const svmdis = (b.readBigUInt64LE(0) & 0x10n) !== 0n;
    return svmdis
      ? { state: "locked-off", detail: "VM_CR.SVMDIS is set: SVM disabled by firmware" }
      : { state: "enabled", detail: "VM_CR.SVMDIS is clear" };
  }
  return { state: "unknown", detail: "unknown CPU vendor" };
}
