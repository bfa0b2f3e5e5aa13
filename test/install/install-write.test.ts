// The install's write steps on real parts: a loop device stands in for the disk (root and losetup
// needed), the real sgdisk, partx, mkfs.vfat, mkfs.ext4, rsync, mount and grub-install for i386-pc
// run through the engine, from the plan kvmstrap install builds. The source is a small tree with
// GRUB's tools in it, so grub-install runs inside the target as on the appliance. The steps that
// need a whole Debian in the target (dpkg, systemctl, update-initramfs, the offline apply) are left
// to the image tier. The guard is checked on this host too: a loop device is never a target.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerSchema } from "../../src/answer/schema.js";
import { detectMachine } from "../../src/app/inspect.js";
import { checkInstallDisk, INSTALL_TARGET, prepareInstallFor, runInstall } from "../../src/app/install.js";
import { EventBus } from "../../src/apply/events.js";
import { RootedHostFs } from "../../src/host/fs.js";
import type { InstallDisk } from "../../src/plan/install-plan.js";
import { INSTALL_WORK } from "../../src/plan/install-plan.js";

const TOOLS = [
  "losetup",
  "sgdisk",
  "partx",
  "wipefs",
  "mkfs.vfat",
  "mkfs.ext4",
  "rsync",
  "grub-install",
  "blkid",
  "chroot",
  "udevadm",
  "unshare",
  "nsenter",
  "dumpe2fs",
];
const which = (t: string) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0;
const missing = TOOLS.filter((t) => !which(t));
const isRoot = process.getuid?.() === 0;
const grubModules = existsSync("/usr/lib/grub/i386-pc/modinfo.sh");
const skip = !isRoot
  ? "needs root (losetup, mount)"
  : missing.length
    ? `missing tools: ${missing.join(", ")} (apt-get install gdisk dosfstools e2fsprogs rsync grub2-common grub-pc-bin)`
    : !grubModules
      ? "missing GRUB's i386-pc modules (apt-get install grub-pc-bin)"
      : null;

const IDS = { rootUuid: "3f0e4c1a-7b2d-4e5f-8a9b-0c1d2e3f4a5b", espVolumeId: "c0ffee42" };
const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" }).trim();

/** A tree with GRUB's installer, the libraries it links and its modules: grub-install runs in it. */
function grubTree(dir: string): void {
  for (const d of ["etc", "boot", "dev", "proc", "sys", "run", "tmp", "usr/share"])
    mkdirSync(path.join(dir, d), { recursive: true });
  writeFileSync(path.join(dir, "etc/fstab"), "# UNCONFIGURED FSTAB\n");
  writeFileSync(path.join(dir, "etc/kvmstrap-tree-marker"), "copied by rsync\n");
  // grub-install does the work itself (it links GRUB's libraries) and asks udevadm about a loop
  // device's partitions; the other tools come along when present.
  const bins = ["grub-install", "grub-probe", "grub-mkimage", "grub-bios-setup", "grub-editenv", "udevadm"]
    .filter(which)
    .map((b) => run("sh", ["-c", `command -v ${b}`]));
  const libs = new Set<string>();
  for (const b of bins)
    for (const m of run("ldd", [b]).matchAll(/(\/\S+\.so[^\s]*)/g)) if (m[1]) libs.add(m[1]);
  for (const f of [...bins, ...libs]) {
    mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    cpSync(f, path.join(dir, f), { dereference: true });
  }
  cpSync("/usr/lib/grub/i386-pc", path.join(dir, "usr/lib/grub/i386-pc"), {
    recursive: true,
    dereference: true,
  });
  if (existsSync("/usr/share/grub"))
    cpSync("/usr/share/grub", path.join(dir, "usr/share/grub"), { recursive: true, dereference: true });
}

describe.skipIf(skip !== null)("install write steps on a loop device", () => {
  let work = "";
  let image = "";
  let loop = "";
  let sharedWork = false;
  beforeAll(() => {
    work = mkdtempSync(path.join(tmpdir(), `kvmstrap-install-${process.pid}-`));
    image = path.join(work, "disk.img");
    run("truncate", ["-s", "600M", image]);
    loop = run("losetup", ["--find", "--show", "--partscan", image]);
    // Something to wipe: an old filesystem signature over the whole disk.
    run("mkfs.ext4", ["-q", "-F", "-L", "olddata", loop]);
    grubTree(path.join(work, "tree"));
  }, 120_000);
  afterAll(() => {
    spawnSync("umount", ["-R", INSTALL_TARGET]);
    if (sharedWork) spawnSync("umount", ["-R", INSTALL_WORK]);
    spawnSync("umount", ["-R", path.join(work, "check")]);
    if (loop) spawnSync("losetup", ["-d", loop]);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("the guard refuses a loop device on this host: it is not a disk", async () => {
    const problems = await checkInstallDisk(loop, {});
    expect(problems).toEqual([expect.stringMatching(/not a disk/)]);
  });

  it("wipes, partitions for BIOS+UEFI, formats, copies the tree, writes fstab by UUID and installs GRUB for BIOS", async () => {
    const answer = answerSchema.parse({
      version: 1,
      install: { disk: { serial: "LOOP" }, wipe: true, firmware: "bios", source: path.join(work, "tree") },
    });
    const disk: InstallDisk = {
      device: loop,
      partition: (n) => `${loop}p${n}`,
      existing: [],
      identity: { serial: null, wwn: null, sizeBytes: null },
      blank: false,
      label: `${path.basename(loop)} (test image)`,
    };
    const report = await detectMachine(
      { root: "/", fs: new RootedHostFs("/"), captured: false },
      { mode: "never" },
    );
    const answerFile = path.join(work, "answer.yaml");
    writeFileSync(answerFile, "version: 1\ninstall:\n  disk:\n    serial: LOOP\n");
    const p = prepareInstallFor(answerFile, { answer }, report, {
      ids: IDS,
      disk,
      units: { copy: [], enable: [], wrapper: null },
      stateDir: path.join(work, "state"),
    });
    // What needs a whole Debian in the target runs in the image tier; the rest runs here, unchanged.
    const needsDebian = new Set([
      "install.guard",
      "install.live-off",
      "install.answer",
      "install.configure",
      "install.initramfs",
      "install.update-grub",
      "install.grub-defaults",
    ]);
    // A kernel without vfat (this CI's microVM kernel has none) cannot mount the ESP: said, not hidden.
    const vfat = /\bvfat\b/.test(readFileSync("/proc/filesystems", "utf8"));
    if (!vfat) {
      console.warn("this kernel has no vfat: the ESP is formatted and checked with blkid, but not mounted");
      needsDebian.add("install.mount.esp");
    }
    const plan = { ...p.plan, refusals: [], actions: p.plan.actions.filter((a) => !needsDebian.has(a.id)) };
    expect(plan.actions.map((a) => a.id)).toContain("install.grub.bios");
    const bus = new EventBus();
    const steps: string[] = [];
    bus.subscribe((e) => {
      if (e.type === "step" && e.phase === "finished") steps.push(e.id);
    });
    // A service with a private mount namespace, as systemd-udevd (PrivateMounts=) runs on the
    // appliance: a slave that gets a copy of every mount under /run (systemd makes every mount
    // shared; here the work directory is made a shared mount for that). The install must leave it
    // no copy of the new root (else the root stays mounted and its journal is replayed at first boot).
    mkdirSync(INSTALL_WORK, { recursive: true });
    run("mount", ["--bind", INSTALL_WORK, INSTALL_WORK]);
    sharedWork = true;
    run("mount", ["--make-shared", INSTALL_WORK]);
    const holder = spawn("unshare", ["-m", "--propagation", "slave", "sleep", "600"], { stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    const r = await runInstall({ ...p, plan }, { bus, stateDir: path.join(work, "state") });
    const held = spawnSync("nsenter", ["-t", String(holder.pid), "-m", "cat", "/proc/self/mountinfo"])
      .stdout.toString()
      .split("\n")
      .filter((l) => l.includes(INSTALL_TARGET));
    holder.kill();
    run("umount", [INSTALL_WORK]);
    sharedWork = false;
    expect(r.error ?? null).toBeNull();
    expect(r.status).toBe("succeeded");
    expect(steps).toEqual(plan.actions.map((a) => a.id));
    expect(steps.slice(-4)).toEqual(["install.logs", "install.sync", "install.umount", "install.closed"]);
    expect(held).toEqual([]);
    expect(run("dumpe2fs", ["-h", `${loop}p3`])).not.toMatch(/^Filesystem features:.*needs_recovery/m);
    console.log(
      `install write steps on ${loop}: ${plan.actions.length} steps in ${((Date.now() - t0) / 1000).toFixed(1)} s`,
    );

    // The target is unmounted at the end; what it holds is read back from the partitions.
    expect(spawnSync("mountpoint", ["-q", INSTALL_TARGET]).status).not.toBe(0);
    expect(run("blkid", ["-o", "value", "-s", "UUID", `${loop}p3`])).toBe(IDS.rootUuid);
    expect(run("blkid", ["-o", "value", "-s", "UUID", `${loop}p2`])).toBe("C0FF-EE42");
    expect(run("blkid", ["-o", "value", "-s", "TYPE", `${loop}p2`])).toBe("vfat");
    expect(run("sgdisk", ["--print", loop])).toMatch(/EF02[\s\S]*EF00[\s\S]*8304/);
    // The old whole-disk ext4 is gone: nothing but the new partition table at the start.
    expect(spawnSync("blkid", ["-p", "-o", "value", "-s", "LABEL", loop]).stdout.toString()).not.toMatch(
      /olddata/,
    );
    const check = path.join(work, "check");
    mkdirSync(check);
    run("mount", ["-o", "ro", `${loop}p3`, check]);
    try {
      expect(readFileSync(path.join(check, "etc/kvmstrap-tree-marker"), "utf8")).toBe("copied by rsync\n");
      expect(readFileSync(path.join(check, "etc/fstab"), "utf8")).toContain(`UUID=${IDS.rootUuid} / ext4`);
      expect(readFileSync(path.join(check, "etc/fstab"), "utf8")).toContain("UUID=C0FF-EE42 /boot/efi vfat");
      expect(existsSync(path.join(check, "boot/grub/i386-pc/core.img"))).toBe(true);
      // The install's journal and event log, up to the logs step, on the installed disk.
      const events = readFileSync(
        path.join(check, "var/log/kvmstrap/install/log/install-events.jsonl"),
        "utf8",
      );
      expect(events).toMatch(/"id":"install.copy"/);
      expect(existsSync(path.join(check, "var/log/kvmstrap/install/runs"))).toBe(true);
    } finally {
      run("umount", [check]);
    }
    // GRUB's boot code in the MBR and its core image in the BIOS boot partition.
    const head = readFileSync(image).subarray(0, 512);
    expect(head.includes(Buffer.from("GRUB"))).toBe(true);
    expect(head.readUInt16LE(510)).toBe(0xaa55);
  }, 300_000);
});
if (skip) it.skip(`install write steps on a loop device: ${skip}`, () => {});
