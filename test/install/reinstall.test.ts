// No reinstall loop: after an unattended install the appliance's stick usually boots again, and the
// install must then leave the disk it wrote alone when the answer is the same. On real parts: a
// loop device is installed onto by the install plan through the engine (the steps that need a whole
// Debian in the target are the image tier's), then the marker is read back the way the appliance
// reads it (partx + debugfs, no mount), and the decision is taken for the same answer, a changed
// answer, a blank disk and disks that are not ours. The image file is hashed around each read: a
// read that changed one byte (a mount replaying the journal) fails the test.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answerSchema } from "../../src/answer/schema.js";
import { detectMachine } from "../../src/app/inspect.js";
import { checkInstalled, INSTALL_TARGET, prepareInstallFor, runInstall } from "../../src/app/install.js";
import { type InstalledFrom, installedFrom, reinstallDecision } from "../../src/app/install-marker.js";
import { EventBus } from "../../src/apply/events.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import type { InstallDisk } from "../../src/plan/install-plan.js";

const TOOLS = [
  "losetup",
  "sgdisk",
  "partx",
  "wipefs",
  "mkfs.vfat",
  "mkfs.ext4",
  "rsync",
  "debugfs",
  "udevadm",
];
const which = (t: string) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0;
const missing = TOOLS.filter((t) => !which(t));
const skip =
  process.getuid?.() !== 0
    ? "needs root (losetup, mount)"
    : missing.length
      ? `missing tools: ${missing.join(", ")} (apt-get install gdisk dosfstools e2fsprogs rsync util-linux)`
      : null;

const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: "utf8" }).trim();
const sha256 = (file: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(file)
      .on("data", (b) => h.update(b))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });

const whyOf = (r: InstalledFrom) => (r.marker ? null : r.why);

// What needs a whole Debian (or GRUB's tools) in the target: the image tier runs those.
const NEEDS_DEBIAN =
  /^install\.(guard|live-off|answer|configure|initramfs|update-grub|grub-defaults|grub\..*|mount\.esp)$/;

describe.skipIf(skip !== null)("no reinstall loop: the install marker on a loop device", () => {
  let work = "";
  const loops: string[] = [];
  let report: HostReport;
  const loopOf = (name: string, size = "200M") => {
    const image = path.join(work, `${name}.img`);
    run("truncate", ["-s", size, image]);
    const loop = run("losetup", ["--find", "--show", image]);
    loops.push(loop);
    return { image, loop };
  };
  const diskOf = (loop: string): InstallDisk => ({
    device: loop,
    partition: (n) => `${loop}p${n}`,
    existing: [],
    identity: { serial: null, wwn: null, sizeBytes: null },
    blank: false,
    label: `${path.basename(loop)} (test image)`,
  });
  const answerFor = (hostname: string) =>
    answerSchema.parse({
      version: 1,
      host: { hostname },
      install: {
        disk: { serial: "LOOP" },
        wipe: true,
        firmware: "uefi",
        espMiB: 64,
        source: path.join(work, "tree"),
      },
    });
  const prepared = (loop: string, hostname: string, installedAt: string) => {
    const file = path.join(work, `answer-${hostname}.yaml`);
    writeFileSync(file, `version: 1\nhost:\n  hostname: ${hostname}\n`);
    return prepareInstallFor(file, { answer: answerFor(hostname) }, report, {
      ids: { rootUuid: "5d7c1e2a-3b4f-4a6b-9c8d-7e6f5a4b3c2d", espVolumeId: "0badcafe" },
      disk: diskOf(loop),
      units: { copy: [], enable: [], wrapper: null },
      stateDir: path.join(work, "state"),
      installedAt,
    });
  };
  const install = async (p: ReturnType<typeof prepared>) => {
    const plan = { ...p.plan, refusals: [], actions: p.plan.actions.filter((a) => !NEEDS_DEBIAN.test(a.id)) };
    expect(plan.actions.map((a) => a.id)).toContain("install.marker");
    const r = await runInstall({ ...p, plan }, { bus: new EventBus(), stateDir: path.join(work, "state") });
    expect(r.error ?? null).toBeNull();
    expect(r.status).toBe("succeeded");
  };

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), `kvmstrap-reinstall-${process.pid}-`));
    for (const d of ["etc", "dev", "proc", "sys", "run", "tmp"])
      mkdirSync(path.join(work, "tree", d), { recursive: true });
    writeFileSync(path.join(work, "tree/etc/hostname"), "tree\n");
    report = await detectMachine(
      { root: "/", fs: new RootedHostFs("/"), captured: false },
      { mode: "never" },
    );
  }, 60_000);
  afterAll(() => {
    spawnSync("umount", ["-R", INSTALL_TARGET]);
    spawnSync("umount", [path.join(work, "mnt")]);
    for (const l of loops) {
      spawnSync("partx", ["-d", l]);
      spawnSync("losetup", ["-d", l]);
    }
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("after an install: the marker is read without mounting; the same answer is left alone, a changed one installs, --force reinstalls", async () => {
    const { image, loop } = loopOf("installed");
    const first = prepared(loop, "alpha", "2026-12-06T03:00:00.000Z");
    await install(first);

    const before = await sha256(image);
    const read = await installedFrom(loop);
    expect(read.marker).toMatchObject({
      schema: "kvmstrap.installed/1",
      answerSha256: first.plan.answerDigest,
      installedAt: "2026-12-06T03:00:00.000Z",
      disk: { device: loop },
    });
    // The same answer, prepared again as the next boot would: what kvmstrap install checks first.
    const again = await checkInstalled(prepared(loop, "alpha", "2026-12-06T03:30:00.000Z"));
    expect(again.decision).toBe("already-installed");
    expect(again.detail).toContain(`installed already: ${loop}`);
    expect(again.detail).toContain(first.plan.answerDigest.slice(0, 12));
    expect(again.detail).toContain("2026-12-06T03:00:00.000Z");
    expect(again.detail).toMatch(/remove the boot medium or pick the disk in the firmware's boot menu/);
    expect(spawnSync("mountpoint", ["-q", INSTALL_TARGET]).status).not.toBe(0);
    expect(await sha256(image)).toBe(before);

    // The operator changed the answer: install, as asked.
    const changed = await checkInstalled(prepared(loop, "beta", "2026-12-06T03:30:00.000Z"));
    expect(changed.decision).toBe("install");
    expect(changed.detail).toMatch(/another answer/);
    expect(await sha256(image)).toBe(before);

    // --force: the same answer installed again, over the first install (a new marker time).
    await install(prepared(loop, "alpha", "2026-12-06T04:00:00.000Z"));
    expect(await sha256(image)).not.toBe(before);
    const reread = await installedFrom(loop);
    expect(reread.marker?.installedAt).toBe("2026-12-06T04:00:00.000Z");
  }, 300_000);

  it("a blank disk, a disk that is not ours and a malformed marker: install, under the rule set's usual verdict", async () => {
    const { image: blankImage, loop: blank } = loopOf("blank", "64M");
    const b = await installedFrom(blank);
    expect(b).toEqual({ marker: null, why: `no partition table on ${blank}` });
    expect(reinstallDecision("0".repeat(64), b.marker)).toBe("install");
    expect(await sha256(blankImage)).toBe(
      createHash("sha256")
        .update(Buffer.alloc(64 * 1024 ** 2))
        .digest("hex"),
    );

    // A foreign ext4 partition holding a file at the marker's path, whose partition is named otherwise:
    // not ours, whatever it holds.
    const mnt = path.join(work, "mnt");
    mkdirSync(mnt, { recursive: true });
    const withPartition = (name: string, marker: string) => {
      const { image, loop } = loopOf(`part-${loops.length}`, "64M");
      run("sgdisk", ["--new=1:0:0", "--typecode=1:8300", `--change-name=1:${name}`, loop]);
      run("partx", ["--add", loop]);
      run("mkfs.ext4", ["-q", "-F", `${loop}p1`]);
      run("mount", [`${loop}p1`, mnt]);
      mkdirSync(path.join(mnt, "etc/kvmstrap"), { recursive: true });
      writeFileSync(path.join(mnt, "etc/kvmstrap/installed.json"), marker);
      run("umount", [mnt]);
      return { image, loop };
    };
    const same = JSON.stringify({
      schema: "kvmstrap.installed/1",
      answerSha256: "a".repeat(64),
      version: "1",
      installedAt: "x",
      disk: { device: "/dev/x", serial: null, wwn: null, sizeBytes: null },
    });
    const foreign = withPartition("data", same);
    const before = await sha256(foreign.image);
    const f = await installedFrom(foreign.loop);
    expect(f).toEqual({ marker: null, why: `no partition named "kvmstrap root" on ${foreign.loop}` });
    expect(reinstallDecision("a".repeat(64), f.marker)).toBe("install");
    expect(await sha256(foreign.image)).toBe(before);

    // Named like ours, but its marker is not kvmstrap's: install (the rules decide on erasing it).
    const odd = withPartition("kvmstrap root", "not json at all");
    expect(whyOf(await installedFrom(odd.loop))).toMatch(/is not JSON/);
    const big = withPartition("kvmstrap root", `{"pad":"${"x".repeat(70_000)}"}`);
    expect(whyOf(await installedFrom(big.loop))).toMatch(/larger than 65536 bytes/);
    // The same marker text on a partition named ours reads back: the name is what made the difference.
    const ours = withPartition("kvmstrap root", same);
    expect(reinstallDecision("a".repeat(64), (await installedFrom(ours.loop)).marker)).toBe(
      "already-installed",
    );
  }, 120_000);
});
if (skip) it.skip(`no reinstall loop on a loop device: ${skip}`, () => {});
