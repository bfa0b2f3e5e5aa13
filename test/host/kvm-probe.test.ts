import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type CommandResult, type CommandRunner, ExecaRunner } from "../../src/host/commands.js";
import { findProbeKernel, runKvmProbe } from "../../src/host/kvm-probe.js";
import {
  PROBE_BOOT_EXIT_STATUS,
  PROBE_BOOT_MARKER,
  PROBE_BOOT_SECTOR_BASE64,
} from "../../src/host/kvm-probe-boot.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const hasBinutils = (() => {
  try {
    execFileSync("as", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

describe("the probe's boot sector", () => {
  it.skipIf(!hasBinutils)("is exactly what kvm-probe-boot.S assembles to", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-as-"));
    execFileSync("as", ["--32", "-o", `${dir}/p.o`, path.join(projectRoot, "src/host/kvm-probe-boot.S")]);
    execFileSync("ld", [
      "-m",
      "elf_i386",
      "-Ttext",
      "0x7c00",
      "--oformat",
      "binary",
      "-o",
      `${dir}/p.bin`,
      `${dir}/p.o`,
    ]);
    const built = readFileSync(`${dir}/p.bin`);
    expect(built.length).toBe(512);
    expect(built.equals(Buffer.from(PROBE_BOOT_SECTOR_BASE64, "base64"))).toBe(true);
  });
  if (!hasBinutils)
    it.skip("re-assembly skipped: GNU as is not installed (apt-get install binutils)", () => {});
});

/**
 * A qemu stand-in shaped like the AMD EPYC host of the issue: the boot sector reaches long mode only
 * when no other guest runs beside it, and a stock kernel never boots. It counts overlapping runs.
 */
class ContendedQemu implements CommandRunner {
  active = 0;
  maxActive = 0;
  async which(program: string) {
    return `/usr/bin/${program}`;
  }
  async run(_file: string, args: readonly string[]): Promise<CommandResult> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    await new Promise((r) => setTimeout(r, 30));
    const alone = this.active === 1;
    this.active--;
    const chardev = args.find((a) => a.startsWith("file,id=dbg,path="));
    if (chardev) {
      if (!alone) return { exitCode: undefined, stdout: "", stderr: "", timedOut: true };
      await writeFile(
        chardev.slice("file,id=dbg,path=".length),
        `Booting from 0000:7c00\n${PROBE_BOOT_MARKER}`,
      );
      return { exitCode: PROBE_BOOT_EXIT_STATUS, stdout: "", stderr: "", timedOut: false };
    }
    return { exitCode: undefined, stdout: "Linux version 6.1\n", stderr: "", timedOut: true };
  }
}

describe("the probe's stages", () => {
  it("run one after the other, so a boot sector that passes alone is reported as passing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-probe-fake-"));
    const kernel = path.join(dir, "vmlinuz");
    await writeFile(kernel, "not a kernel: the stand-in never reads it");
    const runner = new ContendedQemu();
    const probe = await runKvmProbe({
      runner,
      mode: "always",
      kernel,
      cacheFile: path.join(dir, "probe.json"),
      kvmAccessible: async () => true,
    });
    expect(runner.maxActive).toBe(1);
    expect(probe.stages.map((s) => [s.name, s.ok])).toEqual([
      ["guest-code", true],
      ["linux-boot", false],
    ]);
    expect(probe.verdict).toBe("unusable");
    expect(probe.detail).toMatch(/boot sector reached long mode/);
    expect(probe.detail).not.toMatch(/could not run guest code/);
  });
});

const qemu = existsSync("/usr/bin/qemu-system-x86_64");
const kvm = existsSync("/dev/kvm");

describe.skipIf(!qemu || !kvm)("the functional probe on this machine's /dev/kvm", () => {
  it("boots real guests under -accel kvm and gives a verdict backed by its stages", async () => {
    const kernel = await findProbeKernel();
    const cacheFile = path.join(mkdtempSync(path.join(tmpdir(), "kvmstrap-probe-cache-")), "probe.json");
    const probe = await runKvmProbe({ runner: new ExecaRunner(), mode: "always", cacheFile });
    expect(["usable", "unusable"]).toContain(probe.verdict);
    expect(probe.stages[0]?.name).toBe("guest-code");
    if (kernel) expect(probe.stages.map((s) => s.name)).toEqual(["guest-code", "linux-boot"]);
    // The verdict follows from the stages, never the other way round, and each stage says what it saw.
    expect(probe.verdict === "usable").toBe(probe.stages.every((s) => s.ok));
    for (const s of probe.stages) expect(s.detail.length).toBeGreaterThan(0);
    // The detail never calls a stage failed that passed.
    if (probe.stages[0]?.ok) expect(probe.detail).not.toMatch(/could not run guest code/);
    // This workplace's hosts (Intel or AMD) run guests through a nested paravirtual KVM (kvm_pvm)
    // where a stock kernel does not boot: whichever stage passes on this CPU, the verdict is "unusable".
    if (existsSync("/sys/module/kvm_pvm") && kernel) {
      expect(probe.verdict).toBe("unusable");
      expect(probe.stages[1]?.ok).toBe(false);
    }
    // A second run in "auto" mode answers from this boot's cache without starting qemu again.
    const again = await runKvmProbe({ runner: new ExecaRunner(), mode: "auto", cacheFile });
    expect(again.cached).toBe(true);
    expect(again.verdict).toBe(probe.verdict);
  }, 60_000);
});
if (!(qemu && kvm))
  it.skip("functional probe skipped: qemu-system-x86_64 or /dev/kvm is missing here", () => {});

describe("the probe on a non-x86 host", () => {
  it("is unavailable, never a verdict from x86 guests", async () => {
    const runner = new ContendedQemu();
    const probe = await runKvmProbe({
      runner,
      mode: "always",
      cacheFile: path.join(mkdtempSync(path.join(tmpdir(), "kvmstrap-probe-arm-")), "probe.json"),
      hostArch: "arm64",
      kvmAccessible: async () => true,
    });
    expect(probe.verdict).toBe("unavailable");
    expect(probe.detail).toMatch(/x86 guests only; this host is arm64/);
    expect(runner.maxActive).toBe(0);
  });
});
