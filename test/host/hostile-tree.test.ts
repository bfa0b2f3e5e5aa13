// A machine root given with --root (or unpacked from --snapshot) is untrusted: every hostile shape
// below must end detection quickly with the fact unknown and a warning naming the path, never a hang,
// a read of the live machine or gigabytes of memory.
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { detectHost, type HostReport } from "../../src/detect/index.js";
import { READ_LIMITS, RootedHostFs } from "../../src/host/fs.js";

const dirs: string[] = [];
// Removing 300k files takes seconds on a busy machine.
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}, 60_000);

const CPUINFO =
  "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test CPU\nflags\t\t: fpu vmx lm\n\n";

/** A small, sane machine root; each test then breaks one thing in it. */
function machine(base = tmpdir()): string {
  const root = mkdtempSync(path.join(base, "kvmstrap-hostile-"));
  dirs.push(root);
  const file = (p: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    writeFileSync(path.join(root, p), text);
  };
  file("proc/cpuinfo", CPUINFO);
  file("proc/meminfo", "MemTotal:       16303428 kB\n");
  file("proc/sys/kernel/hostname", "hostile\n");
  mkdirSync(path.join(root, "sys/class/net"), { recursive: true });
  mkdirSync(path.join(root, "sys/bus/pci/devices"), { recursive: true });
  return root;
}

/** Detection with a deadline: a hang fails the test instead of stalling the suite. */
async function detect(root: string, ms = 10_000): Promise<HostReport> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`detection did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([detectHost({ fs: new RootedHostFs(root), pciIds: null }), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

const warningAt = (r: HostReport, p: string) => r.warnings.filter((w) => w.path === p).map((w) => w.message);

describe("detection on a hostile machine root", () => {
  it("a self-referencing symlink is a loop: unknown, with a warning", async () => {
    const root = machine();
    rmSync(path.join(root, "proc/cpuinfo"));
    symlinkSync("cpuinfo", path.join(root, "proc/cpuinfo"));
    rmSync(path.join(root, "sys/class/net"), { recursive: true });
    symlinkSync("net", path.join(root, "sys/class/net"));
    const r = await detect(root);
    expect(r.cpu.model).toBeNull();
    expect(warningAt(r, "/proc/cpuinfo").join()).toMatch(/symlink loop/);
    expect(warningAt(r, "/sys/class/net").join()).toMatch(/symlink loop/);
  });

  it("a FIFO is never opened: unknown, with a warning", async () => {
    const root = machine();
    rmSync(path.join(root, "proc/cpuinfo"));
    execFileSync("mkfifo", [path.join(root, "proc/cpuinfo")]);
    const r = await detect(root);
    expect(r.cpu.model).toBeNull();
    expect(warningAt(r, "/proc/cpuinfo").join()).toMatch(/a FIFO: not opened/);
    expect(r.warnings.filter((w) => w.path === "/proc/cpuinfo").map((w) => w.reason)).toContain("special");
  });

  it("sys -> /sys never reaches the live machine's /sys", async () => {
    const root = machine();
    rmSync(path.join(root, "sys"), { recursive: true });
    symlinkSync("/sys", path.join(root, "sys"));
    const r = await detect(root);
    // This machine has network interfaces and PCI functions; none of them may appear.
    expect(r.nics).toEqual([]);
    expect(r.pci).toEqual([]);
    expect(r.warnings.some((w) => w.path.startsWith("/sys") && /symlink loop/.test(w.message))).toBe(true);
    expect(r.cpu.model).toBe("Test CPU");
  });

  it("a relative link that climbs above the root is refused, not clamped", async () => {
    const root = machine();
    symlinkSync("../../../../../../../../../../etc/hostname", path.join(root, "proc/sys/kernel/hostname2"));
    rmSync(path.join(root, "proc/sys/kernel/hostname"));
    symlinkSync("hostname2", path.join(root, "proc/sys/kernel/hostname"));
    const r = await detect(root);
    expect(r.hostname).toBeNull();
    expect(warningAt(r, "/proc/sys/kernel/hostname").join()).toMatch(/above the machine root/);
  });

  it.skipIf(process.getuid?.() !== 0)("a device node is never opened (needs root to mknod)", async () => {
    const root = machine();
    rmSync(path.join(root, "proc/meminfo"));
    execFileSync("mknod", [path.join(root, "proc/meminfo"), "c", "1", "5"]); // /dev/zero: endless bytes
    const r = await detect(root);
    expect(r.memory.totalKiB).toBeNull();
    expect(warningAt(r, "/proc/meminfo").join()).toMatch(/a character device: not opened/);
  });

  it("a sparse 10 GB file is not read", async () => {
    const root = machine();
    truncateSync(path.join(root, "proc/cpuinfo"), 10 * 2 ** 30);
    const rss0 = process.memoryUsage().rss;
    const r = await detect(root);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(64 * 2 ** 20);
    expect(r.cpu.model).toBeNull();
    expect(warningAt(r, "/proc/cpuinfo").join()).toMatch(
      new RegExp(`larger than ${READ_LIMITS.textBytes} bytes`),
    );
  });

  it("a directory of 300k entries is not walked", async () => {
    // tmpfs when there is one: creating 300k files on disk costs more than the test is about.
    const root = machine(existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
    const devices = path.join(root, "sys/bus/pci/devices");
    execFileSync("sh", ["-c", 'seq -f "0000:%06g.0" 1 300000 | xargs touch'], { cwd: devices });
    const t0 = performance.now();
    const r = await detect(root);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(r.pci).toEqual([]);
    expect(warningAt(r, "/sys/bus/pci/devices").join()).toMatch(
      new RegExp(`300000 entries, more than the ${READ_LIMITS.dirEntries}`),
    );
  }, 60_000);

  it("the whole walk has a read budget: past it every read is skipped, with one warning", async () => {
    const root = machine();
    // 3000 PCI functions each cost a dozen reads; a budget of 2000 reads runs out among them.
    const devices = path.join(root, "sys/bus/pci/devices");
    for (let i = 0; i < 3000; i++)
      mkdirSync(
        path.join(
          devices,
          `0000:${(i >> 8).toString(16).padStart(2, "0")}:${((i >> 3) & 31).toString(16).padStart(2, "0")}.${i & 7}`,
        ),
      );
    const saved = READ_LIMITS.operations;
    READ_LIMITS.operations = 2000;
    try {
      const r = await detect(root);
      const spent = r.warnings.filter((w) => /read budget .* is spent/.test(w.message));
      expect(spent).toHaveLength(1);
    } finally {
      READ_LIMITS.operations = saved;
    }
  });

  it("configuration files are read afresh: one HostFs sees a file apply created after its first look", async () => {
    const root = machine();
    mkdirSync(path.join(root, "etc/default"), { recursive: true });
    const fs = new RootedHostFs(root);
    expect(await fs.readText("/etc/default/grub")).toBeNull();
    writeFileSync(path.join(root, "etc/default/grub"), 'GRUB_CMDLINE_LINUX=""\n');
    expect(await fs.readText("/etc/default/grub")).toBe('GRUB_CMDLINE_LINUX=""\n');
  });
});
