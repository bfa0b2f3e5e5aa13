import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ExecaRunner } from "../../src/host/commands.js";
import { findProbeKernel, runKvmProbe } from "../../src/host/kvm-probe.js";
import { PROBE_BOOT_SECTOR_BASE64 } from "../../src/host/kvm-probe-boot.js";
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
    // The verdict follows from the stages, never the other way round.
    expect(probe.verdict === "usable").toBe(probe.stages.every((s) => s.ok));
    // This workplace's hosts run guests through a nested paravirtual KVM (kvm_pvm) where firmware code
    // runs but a stock kernel stalls: the probe must call that "unusable".
    if (existsSync("/sys/module/kvm_pvm") && kernel) {
      expect(probe.verdict).toBe("unusable");
      expect(probe.stages[0]?.ok).toBe(true);
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
