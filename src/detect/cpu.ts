// CPU facts: architecture, vendor, topology, virtualization flags and whether firmware has locked
// VT-x/AMD-V off. The architecture comes from the machine (/proc/sys/kernel/arch, else the shape of
// /proc/cpuinfo, else the CPU modalias), never from the machine running kvmstrap; /proc/cpuinfo is
// read in its x86, aarch64 and s390x formats. The firmware lock comes from the MSRs kvm-ok reads,
// through /dev/cpu/0/msr (x86 only; needs the msr module and root; "unknown" otherwise, never a guess).
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

/** The header lines of /proc/cpuinfo before the first blank line (s390x keeps its facts there). */
function headerOf(text: string): CpuInfoBlock {
  const block: CpuInfoBlock = {};
  for (const line of (text.split(/\n\s*\n/)[0] ?? "").split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) block[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return block;
}

/** uname -m of the machine, from what its /proc/cpuinfo looks like. */
export function architectureOfCpuInfo(text: string): string | null {
  const head = headerOf(text);
  if (/^IBM\/S390/.test(head.vendor_id ?? "")) return "s390x";
  const first = parseCpuInfo(text)[0] ?? {};
  if (first["CPU implementer"] !== undefined || first["CPU architecture"] !== undefined) {
    const arch = first["CPU architecture"] ?? "";
    return arch === "8" || /AArch64/i.test(arch) ? "aarch64" : "armv7l";
  }
  if (first.vendor_id !== undefined && first.flags !== undefined)
    return first.flags.split(/\s+/).includes("lm") ? "x86_64" : "i686";
  if (/^rv64/.test(first.isa ?? "")) return "riscv64";
  if (/POWER/i.test(first.cpu ?? "")) return "ppc64le";
  return null;
}

/** "cpu:type:x86,ven...", "cpu:type:aarch64:feature:..." -> the architecture. */
function architectureOfModalias(text: string | null): string | null {
  const type = /^cpu:type:([a-z0-9_]+)/.exec(text?.trim() ?? "")?.[1];
  if (type === "x86") return "x86_64";
  if (type === "s390") return "s390x";
  return type ?? null;
}

// MIDR implementer codes of arm64 CPUs (Arm's "Main ID Register" documentation) and the parts most
// hosts run; other parts are named by their codes.
const ARM_IMPLEMENTERS: Record<string, string> = {
  "0x41": "ARM",
  "0x42": "Broadcom",
  "0x43": "Cavium",
  "0x46": "Fujitsu",
  "0x48": "HiSilicon",
  "0x4e": "NVIDIA",
  "0x50": "APM",
  "0x51": "Qualcomm",
  "0x61": "Apple",
  "0xc0": "Ampere",
};
const ARM_PARTS: Record<string, string> = {
  "0x41:0xd03": "Cortex-A53",
  "0x41:0xd07": "Cortex-A57",
  "0x41:0xd08": "Cortex-A72",
  "0x41:0xd0b": "Cortex-A76",
  "0x41:0xd0c": "Neoverse-N1",
  "0x41:0xd40": "Neoverse-V1",
  "0x41:0xd49": "Neoverse-N2",
  "0x41:0xd4f": "Neoverse-V2",
  "0xc0:0xac3": "Ampere-1",
  "0x48:0xd01": "Kunpeng-920",
};
// IBM Z machine types (the "machine =" field of /proc/cpuinfo).
const S390_MACHINES: Record<string, string> = {
  "2964": "IBM z13",
  "2965": "IBM z13s",
  "3906": "IBM z14",
  "3907": "IBM z14 ZR1",
  "8561": "IBM z15",
  "8562": "IBM z15 T02",
  "3931": "IBM z16",
  "3932": "IBM z16 A02",
};

interface Parsed {
  vendor: string | null;
  model: string | null;
  flags: string[];
  threads: number | null;
  sockets: number | null;
  cores: number | null;
}

function parseX86(blocks: CpuInfoBlock[]): Parsed {
  const first = blocks[0] ?? {};
  const packages = new Set(blocks.map((b) => b["physical id"] ?? "0"));
  const cores = new Set(blocks.map((b) => `${b["physical id"] ?? "0"}:${b["core id"] ?? b.processor}`));
  return {
    vendor: first.vendor_id ?? null,
    model: first["model name"] ?? null,
    flags: (first.flags ?? "").split(/\s+/).filter(Boolean),
    threads: blocks.length || null,
    sockets: blocks.length ? packages.size : null,
    cores: blocks.length ? cores.size : null,
  };
}

function parseArm(blocks: CpuInfoBlock[]): Parsed {
  const first = blocks[0] ?? {};
  const implementer = (first["CPU implementer"] ?? "").toLowerCase();
  const part = (first["CPU part"] ?? "").toLowerCase();
  const vendor = ARM_IMPLEMENTERS[implementer] ?? (implementer ? `implementer ${implementer}` : null);
  const named = ARM_PARTS[`${implementer}:${part}`];
  return {
    vendor,
    model: first["model name"] ?? named ?? (part ? `${vendor ?? "Arm"} part ${part}` : null),
    flags: (first.Features ?? "").split(/\s+/).filter(Boolean),
    threads: blocks.length || null,
    sockets: null, // cpuinfo does not say; topology lives in sysfs
    cores: null,
  };
}

function parseS390(text: string): Parsed {
  const head = headerOf(text);
  const machine = /machine = (\w+)/.exec(text)?.[1] ?? null;
  const count = Number.parseInt(head["# processors"] ?? "", 10);
  return {
    vendor: "IBM",
    model: machine ? (S390_MACHINES[machine] ?? `IBM Z machine type ${machine}`) : null,
    flags: (head.features ?? "").split(/\s+/).filter(Boolean),
    threads: Number.isInteger(count) && count > 0 ? count : null,
    sockets: null,
    cores: null,
  };
}

export async function detectCpu(ctx: DetectContext): Promise<CpuReport> {
  const sources: Sources = {};
  const [cpuinfo, online, offline, archText] = await Promise.all([
    ctx.fs.readText("/proc/cpuinfo"),
    ctx.fs.readText("/sys/devices/system/cpu/online"),
    ctx.fs.readText("/sys/devices/system/cpu/offline"),
    ctx.fs.readText("/proc/sys/kernel/arch"),
  ]);
  if (online !== null) sources.onlineCpus = "/sys/devices/system/cpu/online";
  if (offline !== null) sources.offlineCpus = "/sys/devices/system/cpu/offline";

  // The kernel's own word first, then what the CPU description looks like.
  const candidates: [string | null, string][] = [
    [archText?.trim() || null, "/proc/sys/kernel/arch"],
    [cpuinfo ? architectureOfCpuInfo(cpuinfo) : null, "/proc/cpuinfo"],
  ];
  // The CPU modalias is read only when neither says (a snapshot without a usable cpuinfo).
  if (candidates.every(([a]) => a === null))
    candidates.push([
      architectureOfModalias(await ctx.fs.readText("/sys/devices/system/cpu/modalias")),
      "/sys/devices/system/cpu/modalias",
    ]);
  const known = candidates.find(([a]) => a !== null);
  const architecture = known?.[0] ?? null;
  if (known) sources.architecture = known[1];

  const blocks = cpuinfo ? parseCpuInfo(cpuinfo) : [];
  const x86 = architecture === "x86_64" || architecture === "i686";
  const parsed: Parsed =
    cpuinfo === null
      ? { vendor: null, model: null, flags: [], threads: null, sockets: null, cores: null }
      : architecture === "s390x"
        ? parseS390(cpuinfo)
        : architecture === "aarch64" || architecture === "armv7l"
          ? parseArm(blocks)
          : parseX86(blocks);
  if (cpuinfo === null)
    ctx.warnings.push({ path: "/proc/cpuinfo", message: "missing: CPU facts are unknown" });
  else if (parsed.threads === null && parsed.model === null)
    ctx.warnings.push({ path: "/proc/cpuinfo", message: "no processor entries found" });
  else
    for (const f of ["vendor", "model", "flags", "sockets", "cores", "threads"] as const)
      if (f === "flags" ? parsed.flags.length : parsed[f] !== null) sources[f] = "/proc/cpuinfo";

  const { flags } = parsed;
  const has = (f: string) => flags.includes(f);
  const virt = x86 ? (has("vmx") ? "vmx" : has("svm") ? "svm" : null) : null;
  const slp = virt === "vmx" ? has("ept") : virt === "svm" ? has("npt") : null;
  const hypervisor = x86 ? has("hypervisor") : await isGuestElsewhere(ctx, architecture, sources);

  const lock: { state: FirmwareVirtLock; detail: string } = x86
    ? await readFirmwareLock(ctx, parsed.vendor, sources)
    : {
        state: "unknown",
        detail: `no firmware lock to read on ${architecture ?? "an unknown architecture"}`,
      };
  return {
    vendor: parsed.vendor,
    model: parsed.model,
    architecture: architecture ?? "unknown",
    sockets: parsed.sockets,
    cores: parsed.cores,
    threads: parsed.threads,
    onlineCpus: online?.trim() ?? null,
    offlineCpus: offline?.trim() || null,
    flags,
    virt,
    secondLevelPaging: slp === null ? "unknown" : slp ? "yes" : "no",
    pdpe1gb: has("pdpe1gb"),
    hypervisor,
    firmwareVirt: lock.state,
    firmwareVirtDetail: lock.detail,
    sources,
  };
}

/**
 * Whether a non-x86 machine is itself a guest (x86 says so with its "hypervisor" flag): s390x names
 * its control program in /proc/sysinfo (z/VM or KVM), other guests show the hypervisor in DMI.
 */
async function isGuestElsewhere(ctx: DetectContext, architecture: string | null, sources: Sources) {
  if (architecture === "s390x") {
    const sysinfo = await ctx.fs.readText("/proc/sysinfo");
    const guest = /Control Program:\s*(z\/VM|KVM)/i.test(sysinfo ?? "");
    if (sysinfo !== null) sources.hypervisor = "/proc/sysinfo";
    return guest;
  }
  const [vendor, product, xen] = await Promise.all([
    ctx.fs.readText("/sys/class/dmi/id/sys_vendor"),
    ctx.fs.readText("/sys/class/dmi/id/product_name"),
    ctx.fs.readText("/sys/hypervisor/type"),
  ]);
  const guest =
    /^(QEMU|Amazon EC2|Microsoft Corporation|VMware|Xen)/i.test(vendor?.trim() ?? "") ||
    /(KVM|Virtual Machine|HVM domU)/i.test(product ?? "") ||
    Boolean(xen?.trim());
  if (vendor !== null) sources.hypervisor = "/sys/class/dmi/id/sys_vendor";
  return guest;
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
