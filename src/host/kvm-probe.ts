// The functional KVM probe: does a guest actually run under -accel kvm on this host? /dev/kvm can
// exist and still be unusable (a nested paravirtual host, a broken module), so the only honest
// answer comes from running guests. Two stages run one after the other, each under a strict timeout
// (side by side they compete for the host's vCPUs and memory, and on a small host the boot sector then
// misses its deadline: a false "could not run guest code"):
//   1. guest-code: a 512-byte boot sector that reaches long mode (see kvm-probe-boot.S);
//   2. linux-boot: a stock Linux kernel, which must reach its root-mount panic ("booted to the end
//      of early init") — a kernel is what users run, and some hosts run firmware but not kernels.
// The result is cached per boot under /run/kvmstrap, since a probe costs seconds and a reboot is
// the only thing that changes its answer.
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { CommandRunner } from "./commands.js";
import { PROBE_BOOT_EXIT_STATUS, PROBE_BOOT_MARKER, PROBE_BOOT_SECTOR_BASE64 } from "./kvm-probe-boot.js";
import type { KvmProbe } from "./kvm-probe-result.js";

export interface KvmProbeOptions {
  runner: CommandRunner;
  /** "auto" uses a cached answer from this boot; "always" re-runs; "never" skips. */
  mode?: "auto" | "always" | "never";
  kernel?: string | null;
  cacheFile?: string;
  timeoutMs?: number;
  /** Node's name for this host's architecture (process.arch by default). */
  hostArch?: string;
  /** Whether /dev/kvm can be opened read-write; the real check by default (tests pass their own). */
  kvmAccessible?: () => Promise<boolean>;
}

export const DEFAULT_CACHE_FILE = "/run/kvmstrap/kvm-probe.json";
const KERNEL_REACHED_END = /Kernel panic - not syncing: VFS|VFS: Unable to mount root/;

/** Kernel images to boot, in order of preference. */
export async function findProbeKernel(explicit?: string | null): Promise<string | null> {
  const release = (await readFile("/proc/sys/kernel/osrelease", "utf8").catch(() => "")).trim();
  const candidates = [
    explicit,
    process.env.KVMSTRAP_PROBE_KERNEL,
    release && `/boot/vmlinuz-${release}`,
    "/boot/vmlinuz",
    "/vmlinuz",
    "/var/cache/kvmstrap/probe-kernel/vmlinuz",
  ].filter((c): c is string => Boolean(c));
  for (const c of candidates) {
    try {
      await access(c, constants.R_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return null;
}

export async function devKvmAccessible(): Promise<boolean> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

type CacheEntry = { key: string; probe: KvmProbe };

export async function runKvmProbe(options: KvmProbeOptions): Promise<KvmProbe> {
  const { runner } = options;
  const mode = options.mode ?? "auto";
  if (mode === "never") return notRun("not run (--probe never)");
  const cacheFile = options.cacheFile ?? DEFAULT_CACHE_FILE;
  const requested = options.kernel ?? process.env.KVMSTRAP_PROBE_KERNEL ?? null;
  const bootId = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim();
  // The cache answers first: only a reboot (a new boot id) or another requested kernel changes it.
  const key = JSON.stringify({ bootId, requested });
  if (mode === "auto") {
    const cached = await readCache(cacheFile, key);
    if (cached) return { ...cached, cached: true };
  }
  // The probe's guests (a boot sector, an x86 kernel) are x86 code: elsewhere they prove nothing.
  if ((options.hostArch ?? process.arch) !== "x64")
    return unavailable(
      `the functional probe runs x86 guests only; this host is ${options.hostArch ?? process.arch}`,
    );
  const qemu = await runner.which("qemu-system-x86_64");
  if (!qemu) return unavailable("qemu-system-x86_64 is not installed, so no guest could be started");
  if (!(await (options.kvmAccessible ?? devKvmAccessible)()))
    return unavailable("/dev/kvm is missing or not read-write for this user");
  const kernel = await findProbeKernel(options.kernel);
  const timeoutMs = options.timeoutMs ?? 6000;
  const work = await mkdtemp(path.join(tmpdir(), "kvmstrap-probe-"));
  try {
    const code = await guestCodeStage(runner, qemu, work, timeoutMs);
    const linux = kernel ? await linuxStage(runner, qemu, kernel, timeoutMs) : null;
    const stages = linux ? [code, linux] : [code];
    const probe = verdictOf(stages, kernel);
    await writeCache(cacheFile, { key, probe });
    return probe;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The verdict needs every stage that ran; the detail says what each one showed, so a boot sector that
 * ran is reported as running even when the kernel did not boot.
 */
export function verdictOf(stages: KvmProbe["stages"], kernel: string | null): KvmProbe {
  const [code, linux] = stages;
  const result = (verdict: KvmProbe["verdict"], detail: string): KvmProbe => ({
    verdict,
    detail,
    stages,
    cached: false,
  });
  if (!code?.ok && !linux?.ok) {
    const kernelPart = linux ? `; a Linux kernel (${kernel}) did not boot either: ${linux.detail}` : "";
    return result("unusable", `KVM could not run guest code: ${code?.detail}${kernelPart}`);
  }
  if (!code?.ok) {
    return result(
      "unusable",
      `a Linux kernel booted under KVM, but the boot-sector guest did not reach long mode: ${code?.detail}`,
    );
  }
  if (linux && !linux.ok) {
    return result(
      "unusable",
      `/dev/kvm runs firmware-level guest code (the boot sector reached long mode), but a Linux kernel (${kernel}) did not boot under KVM: ${linux.detail}`,
    );
  }
  return result(
    "usable",
    linux
      ? `a Linux kernel booted under KVM to its root mount in ${linux.ms} ms`
      : "guest code reached long mode under KVM; no kernel image was found for the full boot test (set KVMSTRAP_PROBE_KERNEL)",
  );
}

async function guestCodeStage(runner: CommandRunner, qemu: string, work: string, timeoutMs: number) {
  const disk = path.join(work, "boot.img");
  const debug = path.join(work, "debugcon.txt");
  await writeFile(disk, Buffer.from(PROBE_BOOT_SECTOR_BASE64, "base64"));
  const t0 = performance.now();
  const r = await runner.run(
    qemu,
    [
      ...["-accel", "kvm", "-M", "pc", "-m", "16", "-nodefaults", "-display", "none", "-no-reboot"],
      ...["-drive", `file=${disk},format=raw,if=floppy`, "-boot", "a"],
      ...["-chardev", `file,id=dbg,path=${debug}`, "-device", "isa-debugcon,iobase=0x402,chardev=dbg"],
      ...["-device", "isa-debug-exit,iobase=0xf4,iosize=1"],
    ],
    { timeoutMs },
  );
  const ms = Math.round(performance.now() - t0);
  const out = (await readFile(debug, "utf8").catch(() => "")).replace(/\0/g, "");
  const ok = r.exitCode === PROBE_BOOT_EXIT_STATUS && out.endsWith(PROBE_BOOT_MARKER);
  const reached = /Booting from 0000:7c00\n(\w*)$/.exec(out)?.[1] ?? "";
  const detail = ok
    ? "boot sector reached long mode and exited"
    : r.timedOut
      ? `no exit within ${timeoutMs} ms (steps reached: ${reached || "none"})`
      : `qemu exited ${r.exitCode}: ${lastLine(r.stderr)}`;
  return { name: "guest-code", ok, ms, detail };
}

async function linuxStage(runner: CommandRunner, qemu: string, kernel: string, timeoutMs: number) {
  const t0 = performance.now();
  const r = await runner.run(
    qemu,
    [
      ...["-accel", "kvm", "-M", "pc", "-m", "256", "-nodefaults", "-display", "none", "-no-reboot"],
      ...["-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=4", "-serial", "stdio"],
    ],
    { timeoutMs },
  );
  const ms = Math.round(performance.now() - t0);
  const ok = KERNEL_REACHED_END.test(r.stdout);
  const internal = /KVM internal error[^\n]*/.exec(r.stderr)?.[0];
  const banner = r.stdout.includes("Linux version");
  const detail = ok
    ? "kernel reached its root mount"
    : internal
      ? internal
      : r.timedOut
        ? `no progress within ${timeoutMs} ms (${banner ? "kernel banner printed, then it stalled" : "not even the kernel banner appeared"})`
        : `qemu exited ${r.exitCode}: ${lastLine(r.stderr)}`;
  return { name: "linux-boot", ok, ms, detail };
}

const lastLine = (s: string) =>
  s
    .trim()
    .split("\n")
    .filter((l) => !l.includes("warning: host doesn't support requested feature"))
    .pop() ?? "";

const notRun = (detail: string): KvmProbe => ({ verdict: "not-run", detail, stages: [], cached: false });
const unavailable = (detail: string): KvmProbe => ({
  verdict: "unavailable",
  detail,
  stages: [],
  cached: false,
});

async function readCache(file: string, key: string): Promise<KvmProbe | null> {
  try {
    const entry = JSON.parse(await readFile(file, "utf8")) as CacheEntry;
    return entry.key === key ? entry.probe : null;
  } catch {
    return null;
  }
}

async function writeCache(file: string, entry: CacheEntry): Promise<void> {
  try {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    await writeFile(tmp, JSON.stringify(entry));
    await rename(tmp, file);
  } catch {
    /* a cache we cannot write only costs time on the next run */
  }
}
