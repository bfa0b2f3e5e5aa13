// Which disks the install may take, on synthetic live systems and on the shared real-machine
// snapshots: the candidates as the TUI and `install --list` show them (usable first, USB last, data
// disks after, the boot medium and non-disks excluded), the guard the plan runs just before it
// erases (identity re-checked, whatever name the disk has now), and the CLI's exits.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { detectMachine } from "../../src/app/inspect.js";
import { checkInstallDisk, installCandidates, prepareInstall } from "../../src/app/install.js";
import { installCommand } from "../../src/cli/install-command.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { captureCli } from "../helpers/capture-cli.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { BLANK_USB, byIdOf, CDROM, DATA, type LiveHostSpec, liveHost, STICK, TARGET } from "./live-host.js";

const made: (() => void)[] = [];
afterAll(() => {
  for (const c of made) c();
});
function host(spec: LiveHostSpec): string {
  const h = liveHost(spec);
  made.push(h.cleanup);
  return h.root;
}
const report = (root: string) =>
  detectMachine({ root, fs: new RootedHostFs(root), captured: true }, { mode: "never" });
function answerFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-install-answer-"));
  made.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "answer.yaml");
  writeFileSync(file, text);
  return file;
}

const USB_BOOT: LiveHostSpec = {
  disks: [STICK, DATA, BLANK_USB, TARGET],
  mounts: [["/dev/sdb", "/run/live/medium", "iso9660"]],
};

describe("install candidates", () => {
  it("booted from a USB stick: the blank disk first, the blank USB disk next, the data disk, the stick last and excluded", async () => {
    const rows = installCandidates(await report(host(USB_BOOT)));
    expect(rows.map((r) => r.disk.name)).toEqual(["vda", "sdc", "sda", "sdb"]);
    const [vda, sdc, sda, sdb] = rows;
    expect(vda).toMatchObject({ excluded: null, holdsData: null, removable: false, bootMedium: false });
    expect(vda?.findings).toEqual([]);
    expect(sdc).toMatchObject({ excluded: null, removable: true });
    expect(sdc?.findings.map((f) => f.ruleId)).toEqual(["install.removable"]);
    expect(sda).toMatchObject({ excluded: null, holdsData: "has partition sda1" });
    expect(sda?.findings.map((f) => f.ruleId)).toEqual(["install.holds-data"]);
    expect(sdb?.bootMedium).toBe(true);
    expect(sdb?.excluded).toMatch(/boot medium: mounted at \/run\/live\/medium/);
    expect(sdb?.findings.map((f) => `${f.ruleId} ${f.level}`)).toContain("install.target error");
  });

  it("booted from the CD: sr0 is never a candidate, the stick holding an ISO copy is still the image", async () => {
    const rows = installCandidates(
      await report(
        host({ disks: [TARGET, CDROM, STICK], mounts: [["/dev/sr0", "/run/live/medium", "iso9660"]] }),
      ),
    );
    const by = (n: string) => rows.find((r) => r.disk.name === n);
    expect(rows[0]?.disk.name).toBe("vda");
    expect(by("sr0")?.excluded).toMatch(/not a disk/);
    // A second copy of the image, not the one booted: it carries the image's label, so it is excluded too.
    expect(by("sdb")?.excluded).toMatch(/kvmstrap image \(filesystem label KVMSTRAP\)/);
  });
});

describe("the guard: the disk re-checked just before it is erased", () => {
  const root = host(USB_BOOT);
  const target = byIdOf(TARGET) as string;

  it("the planned disk, unchanged: go", async () => {
    expect(
      await checkInstallDisk(
        target,
        { serial: TARGET.serial, sizeBytes: TARGET.sizeBytes, blank: true },
        { root },
      ),
    ).toEqual([]);
  });
  it("another disk behind the same path (a different serial and size): refused", async () => {
    const problems = await checkInstallDisk(target, { serial: "OTHER", sizeBytes: 1024 ** 4 }, { root });
    expect(problems).toEqual([
      "its serial is KVMSTRAP-TARGET now, OTHER when planned: the disk changed since planning",
      `its size is ${TARGET.sizeBytes} now, ${1024 ** 4} when planned: the disk changed since planning`,
    ]);
  });
  it("the boot medium, even when a plan named it: refused", async () => {
    const problems = await checkInstallDisk(byIdOf(STICK) as string, { serial: STICK.serial }, { root });
    expect(problems).toEqual([expect.stringMatching(/^refusing to erase sdb: it is the boot medium/)]);
  });
  it("a disk planned blank that now holds a partition: refused", async () => {
    const problems = await checkInstallDisk(byIdOf(DATA) as string, { blank: true }, { root });
    expect(problems).toEqual(["sda has partition sda1 now, but it was blank when planned"]);
  });
  it("a path that leads nowhere now: refused", async () => {
    expect(await checkInstallDisk("/dev/disk/by-id/virtio-GONE", {}, { root })).toEqual([
      "/dev/disk/by-id/virtio-GONE does not exist now: the disk changed since planning",
    ]);
  });
});

describe.skipIf(!sharedHostsAvailable)("install on the shared real-machine snapshots", () => {
  it("laptop: the NVMe holding /boot and the ESP is refused even with wipe", async () => {
    const file = answerFile("version: 1\ninstall:\n  disk:\n    wwn: eui.002538bc21b15601\n  wipe: true\n");
    const p = await prepareInstall(file, { root: sharedHostRoot("intel-i7-1270p-laptop") });
    expect(p.plan.actions).toEqual([]);
    const errors = p.issues.filter((i) => i.level === "error");
    // Its root is on LUKS, which detection cannot tie to a disk: that alone refuses any install too.
    expect(errors.map((e) => `${e.ruleId} ${e.line}`)).toEqual([
      "install.target 4",
      "install.root-unknown 4",
    ]);
    expect(errors[0]?.message).toMatch(
      /^refusing to install onto nvme0n1: it holds the running system \(boot, efi\)/,
    );
  });
  it("AMD desktop: disks without serial, WWN or by-id cannot be named, and no mount table says which holds /", async () => {
    const root = sharedHostRoot("amd-ryzen-1600-desktop");
    const rows = installCandidates(await report(root));
    expect(rows.map((r) => [r.disk.name, r.excluded])).toEqual([
      ["sda", "no by-id link, serial or WWN to name it by"],
      ["sdb", "no by-id link, serial or WWN to name it by"],
      ["sdc", "no by-id link, serial or WWN to name it by"],
    ]);
    const p = await prepareInstall(
      answerFile("version: 1\ninstall:\n  disk:\n    minSize: 1T\n  wipe: true\n"),
      {
        root,
      },
    );
    expect(p.issues.filter((i) => i.level === "error").map((e) => e.ruleId)).toEqual([
      "install.disk-named",
      "install.root-unknown",
    ]);
    expect(p.plan.actions).toEqual([]);
  });
});
if (!sharedHostsAvailable) it.skip(`install on real-machine snapshots: ${SKIP_REASON}`, () => {});

describe("kvmstrap install (CLI)", () => {
  const root = host(USB_BOOT);
  it("--dry-run --root prints the plan; exit 0", async () => {
    const file = answerFile(`version: 1\ninstall:\n  disk:\n    serial: ${TARGET.serial}\n`);
    const r = await captureCli(() => installCommand(["--answer", file, "--dry-run", "--root", root]));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/install\.guard/);
    expect(r.stdout).toMatch(/grub-install --target=i386-pc \/dev\/disk\/by-id\/virtio-DISK_KVMSTRAP-TARGET/);
  });
  it("the boot medium named: exit 2 with file:line, rule and fix, nothing planned", async () => {
    const file = answerFile(`version: 1\ninstall:\n  disk:\n    serial: ${STICK.serial}\n  wipe: true\n`);
    const r = await captureCli(() =>
      installCommand(["--answer", file, "--dry-run", "--json", "--root", root]),
    );
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as {
      plan: { actions: unknown[] };
      issues: { ruleId: string; line: number }[];
    };
    expect(out.plan.actions).toEqual([]);
    expect(out.issues.filter((i) => i.ruleId === "install.target").map((i) => i.line)).toEqual([4]);
  });
  it("--root without --dry-run, and no terminal without --yes, are usage errors", async () => {
    const file = answerFile(`version: 1\ninstall:\n  disk:\n    serial: ${TARGET.serial}\n`);
    expect((await captureCli(() => installCommand(["--answer", file, "--root", root]))).code).toBe(2);
    const r = await captureCli(() => installCommand(["--answer", file]));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
  });
  it("--list --json: candidates in order with the reasons", async () => {
    const r = await captureCli(() => installCommand(["--list", "--json", "--root", root]));
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as { name: string; usable: boolean }[];
    expect(rows.map((x) => [x.name, x.usable])).toEqual([
      ["vda", true],
      ["sdc", true],
      ["sda", true],
      ["sdb", false],
    ]);
  });
});
