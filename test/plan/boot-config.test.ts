// The kernel command line and the files generated from it, on the bootloaders and distributions
// detection finds: conflicting parameters are replaced wherever they are, AMD gets no made-up
// option, each distribution's own regenerator is used, and undo regenerates after restoring.
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Answer, answerSchema } from "../../src/answer/schema.js";
import { applyPlan, undoLastRun } from "../../src/apply/engine.js";
import { detectHost } from "../../src/detect/index.js";
import type { CommandResult, CommandRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Plan, RunCommandAction } from "../../src/plan/actions.js";
import { buildPlan, planFiles } from "../../src/plan/index.js";
import { buildVfioGpuHost, SysfsFixture, VFIO } from "../helpers/sysfs-fixture.js";
import { run, tmp } from "./render/helpers.js";

const cpu = (vendor: string) =>
  `processor\t: 0\nvendor_id\t: ${vendor}\nmodel name\t: Test\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu vmx svm pdpe1gb lm\n\n`;
const GRUB_OFF = [
  "GRUB_DEFAULT=0",
  'GRUB_CMDLINE_LINUX_DEFAULT="quiet intel_iommu=off"',
  'GRUB_CMDLINE_LINUX="console=ttyS0"',
  "",
].join("\n");

const fixtures: SysfsFixture[] = [];
afterEach(() => {
  for (const f of fixtures.splice(0)) f.cleanup();
});
function host(vendor = "GenuineIntel", files: Record<string, string> = {}): SysfsFixture {
  const fx = new SysfsFixture();
  fixtures.push(fx);
  fx.file("/proc/cpuinfo", cpu(vendor));
  for (const [p, c] of Object.entries(files)) fx.file(p, c);
  return fx;
}
const answer = (a: unknown): Answer => answerSchema.parse(a);
const IOMMU = answer({ version: 1, iommu: { enabled: true, passthroughMode: true } });

/** Plans the way the CLI does: detect, read every file the plan may touch, plan. */
async function planIn(fx: SysfsFixture, a: Answer): Promise<Plan> {
  const report = await detectHost({ fs: fx.fs(), pciIds: null });
  const target = new RootedTargetFs(fx.root);
  const paths = planFiles(report, a);
  const current = new Map(await Promise.all(paths.map(async (p) => [p, await target.read(p)] as const)));
  return buildPlan(report, a, current);
}
const contentOf = (p: Plan, file: string) => {
  const a = p.actions.find((x) => x.kind === "write-file" && x.path === file);
  return a?.kind === "write-file" ? a.content : null;
};
const command = (p: Plan, id: string) => p.actions.find((a) => a.id === id) as RunCommandAction | undefined;

/** Sources /etc/default/grub and then grub.d/*.cfg in bash, as grub-mkconfig does; the kernel line. */
function grubLine(files: Record<string, string>): string {
  const dir = tmp("grub-src");
  const names = Object.keys(files).sort((a, b) => (a === "/etc/default/grub" ? -1 : a.localeCompare(b)));
  const paths = names.map((n, i) => {
    const f = path.join(dir, `${i}`);
    writeFileSync(f, files[n] ?? "");
    expect(run(["bash", "-n", f]).code).toBe(0);
    return f;
  });
  const r = run([
    "bash",
    "-c",
    'for f in "$@"; do . "$f"; done; printf %s "$GRUB_CMDLINE_LINUX $GRUB_CMDLINE_LINUX_DEFAULT"',
    "grub",
    ...paths,
  ]);
  rmSync(dir, { recursive: true, force: true });
  return r.stdout;
}
/** The value the kernel ends up with for a parameter: the last one on the line wins. */
const lastValue = (line: string, key: string) =>
  line
    .split(/\s+/)
    .filter((w) => w.split("=")[0] === key)
    .at(-1);

describe("conflicting kernel parameters already on the host are replaced", () => {
  it("intel_iommu=off in GRUB_CMDLINE_LINUX_DEFAULT no longer wins over the intel_iommu=on added", async () => {
    const fx = host("GenuineIntel", { "/etc/default/grub": GRUB_OFF });
    const p = await planIn(fx, IOMMU);
    const grub = contentOf(p, "/etc/default/grub") ?? "";
    const line = grubLine({ "/etc/default/grub": grub });
    expect(lastValue(line, "intel_iommu")).toBe("intel_iommu=on");
    expect(line.split(" ")).not.toContain("intel_iommu=off");
    expect(line).toContain("quiet");
    expect(line).toContain("console=ttyS0");
  });

  it("a drop-in in /etc/default/grub.d that sets the variables again is edited too", async () => {
    const fx = host("GenuineIntel", {
      "/etc/default/grub": 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n',
      "/etc/default/grub.d/50-cloudimg.cfg":
        'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0 iommu=off"\nGRUB_CMDLINE_LINUX="net.ifnames=0"\n',
    });
    const p = await planIn(fx, IOMMU);
    const grub =
      contentOf(p, "/etc/default/grub") ?? readFileSync(path.join(fx.root, "etc/default/grub"), "utf8");
    const dropIn = contentOf(p, "/etc/default/grub.d/50-cloudimg.cfg") ?? "";
    const line = grubLine({ "/etc/default/grub": grub, "/etc/default/grub.d/50-cloudimg.cfg": dropIn });
    expect(lastValue(line, "intel_iommu")).toBe("intel_iommu=on");
    expect(lastValue(line, "iommu")).toBe("iommu=pt");
    expect(line).toContain("net.ifnames=0");
  });

  it("/etc/kernel/cmdline next to GRUB gets the same edit (kernel-install reads it for new entries)", async () => {
    const fx = host("GenuineIntel", {
      "/etc/default/grub": GRUB_OFF,
      "/etc/kernel/cmdline": "root=/dev/sda1 ro intel_iommu=off\n",
    });
    const p = await planIn(fx, IOMMU);
    // Both files exist, no loader.conf: GRUB boots; /etc/kernel/cmdline must not keep the =off.
    expect(contentOf(p, "/etc/kernel/cmdline")).toBe("root=/dev/sda1 ro intel_iommu=on iommu=pt\n");
  });
});

describe("AMD: amd_iommu=on is not a kernel option", () => {
  it("never emits amd_iommu=on; removes amd_iommu=off; expects only iommu=pt after the reboot", async () => {
    const fx = host("AuthenticAMD", {
      "/etc/default/grub": 'GRUB_CMDLINE_LINUX_DEFAULT="quiet amd_iommu=off"\nGRUB_CMDLINE_LINUX=""\n',
    });
    const p = await planIn(fx, IOMMU);
    const line = grubLine({ "/etc/default/grub": contentOf(p, "/etc/default/grub") ?? "" });
    expect(line).not.toMatch(/amd_iommu/);
    expect(lastValue(line, "iommu")).toBe("iommu=pt");
    expect(JSON.stringify(p)).not.toContain("amd_iommu=on");
    expect(p.expect?.cmdlineParams).toEqual(["iommu=pt"]);
  });
});

describe("each distribution's own regenerators, from what detection found", () => {
  it("Debian: update-grub", async () => {
    const fx = host("GenuineIntel", { "/etc/default/grub": GRUB_OFF, "/usr/sbin/update-grub": "" });
    expect(command(await planIn(fx, IOMMU), "boot.update-grub")?.argv).toEqual(["update-grub"]);
  });

  it("RHEL family with BLS entries: grub2-mkconfig writes /boot/grub2/grub.cfg and the entries' options", async () => {
    const fx = host("GenuineIntel", {
      "/etc/default/grub": GRUB_OFF,
      "/usr/sbin/grub2-mkconfig": "",
      "/usr/sbin/grubby": "",
      "/usr/bin/dracut": "",
      "/boot/loader/entries/abc-5.14.0.conf": "title RHEL\noptions root=/dev/vda1\n",
      // RHEL 9 on UEFI: the ESP's grub.cfg only chains to /boot/grub2/grub.cfg.
      "/boot/efi/EFI/redhat/grub.cfg": "search --no-floppy --set prefix\nconfigfile $prefix/grub.cfg\n",
    });
    const argv = command(await planIn(fx, IOMMU), "boot.update-grub")?.argv ?? [];
    expect(argv.slice(3)).toEqual([
      "grub2-mkconfig",
      "/boot/grub2/grub.cfg",
      "intel_iommu",
      "iommu",
      "amd_iommu",
    ]);
    expect(argv[2]).toContain("--update-bls-cmdline");
    expect(run(["sh", "-n", "-c", argv[2] ?? ""]).code).toBe(0);
  });

  it("Proxmox VE with proxmox-boot-tool: it refreshes the ESPs after /etc/kernel/cmdline changes", async () => {
    const fx = host("GenuineIntel", {
      "/etc/kernel/cmdline": "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=off\n",
      "/etc/kernel/proxmox-boot-uuids": "1234-ABCD\n",
      "/usr/sbin/proxmox-boot-tool": "",
      "/usr/bin/kernel-install": "",
    });
    const p = await planIn(fx, IOMMU);
    expect(contentOf(p, "/etc/kernel/cmdline")).toBe(
      "root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt\n",
    );
    expect(command(p, "boot.refresh-entries")?.argv).toEqual(["proxmox-boot-tool", "refresh"]);
    expect(command(p, "boot.regenerate-on-undo")?.undo).toEqual(["proxmox-boot-tool", "refresh"]);
  });

  it("RHEL 8 on UEFI without BLS: grub2-mkconfig -o the ESP's real grub.cfg", async () => {
    const fx = host("GenuineIntel", {
      "/etc/default/grub": GRUB_OFF,
      "/usr/sbin/grub2-mkconfig": "",
      "/boot/efi/EFI/redhat/grub.cfg": "menuentry 'RHEL' { linux /vmlinuz }\n",
    });
    expect(command(await planIn(fx, IOMMU), "boot.update-grub")?.argv).toEqual([
      "grub2-mkconfig",
      "-o",
      "/boot/efi/EFI/redhat/grub.cfg",
    ]);
  });

  it("systemd-boot: /etc/kernel/cmdline and kernel-install for every installed kernel", async () => {
    const fx = host("GenuineIntel", {
      "/etc/kernel/cmdline": "root=/dev/sda2 rw intel_iommu=off\n",
      "/boot/efi/loader/loader.conf": "timeout 3\n",
      "/usr/bin/kernel-install": "",
    });
    const p = await planIn(fx, IOMMU);
    expect(contentOf(p, "/etc/kernel/cmdline")).toBe("root=/dev/sda2 rw intel_iommu=on iommu=pt\n");
    const argv = command(p, "boot.refresh-entries")?.argv ?? [];
    expect(argv[2]).toContain('kernel-install add "$v" "$img"');
    expect(run(["sh", "-n", "-c", argv[2] ?? ""]).code).toBe(0);
  });
});

/** Records each command with the content of /etc/default/grub (or `watchedFile`) when it runs. */
class RecordingRunner implements CommandRunner {
  readonly calls: { argv: string[]; grub: string; watched: string }[] = [];
  constructor(
    root: string,
    private readonly watchedFile = path.join(root, "etc/default/grub"),
  ) {}
  async run(file: string, args: readonly string[]): Promise<CommandResult> {
    let watched = "";
    try {
      watched = readFileSync(this.watchedFile, "utf8");
    } catch {}
    this.calls.push({ argv: [file, ...args], grub: watched, watched });
    return { exitCode: 0, stdout: "", stderr: "", timedOut: false };
  }
  async which(): Promise<string | null> {
    return null;
  }
}

describe("undo regenerates the boot files after restoring their sources", () => {
  it("update-grub runs during undo, after /etc/default/grub is back to its original", async () => {
    const fx = host("GenuineIntel", { "/etc/default/grub": GRUB_OFF, "/usr/sbin/update-grub": "" });
    const plan = await planIn(fx, IOMMU);
    const stateDir = tmp("boot-state");
    const target = new RootedTargetFs(fx.root);
    const applyRunner = new RecordingRunner(fx.root);
    const applied = await applyPlan(plan, { target, runner: applyRunner, stateDir });
    expect(applied.status).toBe("awaiting-reboot");
    const atApply = applyRunner.calls.filter((c) => c.argv[0] === "update-grub");
    expect(atApply).toHaveLength(1);
    expect(atApply[0]?.grub).toContain("intel_iommu=on");

    const undoRunner = new RecordingRunner(fx.root);
    const undone = await undoLastRun({ target, runner: undoRunner, stateDir });
    expect(undone.status).toBe("undone");
    const atUndo = undoRunner.calls.filter((c) => c.argv[0] === "update-grub");
    expect(atUndo).toHaveLength(1);
    expect(atUndo[0]?.grub).toBe(GRUB_OFF);
    expect(readFileSync(path.join(fx.root, "etc/default/grub"), "utf8")).toBe(GRUB_OFF);
  });

  it("the initramfs is rebuilt during undo after the softdeps file is restored (a real VFIO plan)", async () => {
    const fx = buildVfioGpuHost();
    fixtures.push(fx);
    fx.bindDriver(VFIO.gpu, "nouveau").bindDriver(VFIO.audio, "snd_hda_intel");
    fx.file("/proc/cpuinfo", cpu("GenuineIntel")).file("/etc/default/grub", GRUB_OFF);
    fx.file("/etc/modprobe.d/kvmstrap.conf", "# before\n").file("/usr/bin/dracut", "");
    const a = answer({
      version: 1,
      iommu: { enabled: true },
      passthrough: [{ device: { address: VFIO.gpu } }, { device: { address: VFIO.audio } }],
    });
    const plan = await planIn(fx, a);
    expect(plan.refusals).toEqual([]);
    const conf = path.join(fx.root, "etc/modprobe.d/kvmstrap.conf");
    const watch = (root: string) => new RecordingRunner(root, conf);
    const stateDir = tmp("boot-state");
    const target = new RootedTargetFs(fx.root);
    const applyRunner = watch(fx.root);
    await applyPlan(plan, { target, runner: applyRunner, stateDir });
    const atApply = applyRunner.calls.filter((c) => c.argv[0] === "dracut");
    expect(atApply.map((c) => c.argv)).toEqual([["dracut", "--regenerate-all", "--force"]]);
    expect(atApply[0]?.watched).toContain("softdep nouveau pre: vfio-pci");
    const undoRunner = watch(fx.root);
    expect((await undoLastRun({ target, runner: undoRunner, stateDir })).status).toBe("undone");
    const atUndo = undoRunner.calls.filter((c) => c.argv[0] === "dracut");
    expect(atUndo).toHaveLength(1);
    expect(atUndo[0]?.watched).toBe("# before\n");
    rmSync(stateDir, { recursive: true, force: true });
  });
});

/**
 * Runs a regenerator argv with /etc/default replaced by `etcDefault` (a private mount namespace)
 * and fake grub2-mkconfig/grubby first on PATH, which log their arguments: grubby and grub2 exist
 * only on RHEL-family systems.
 */
function runWithFakeRhelTools(argv: string[], etcDefault: string, fakes: string, help: string): string[] {
  const log = path.join(fakes, "log");
  writeFileSync(log, "");
  const fake = (name: string, body: string) => {
    writeFileSync(path.join(fakes, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  };
  fake(
    "grub2-mkconfig",
    `if [ "$1" = --help ]; then echo '${help}'; exit 0; fi\necho "grub2-mkconfig $*" >> ${log}`,
  );
  fake("grubby", `echo "grubby $*" >> ${log}`);
  const r = run([
    "unshare",
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind "$0" /etc/default && PATH="$1:$PATH" && shift && exec "$@"',
    etcDefault,
    fakes,
    ...argv,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return readFileSync(log, "utf8").trim().split("\n");
}
const canUnshareMount = run(["unshare", "-m", "--propagation", "private", "true"]).code === 0;

describe("RHEL BLS entries follow /etc/default/grub, on apply and on undo", () => {
  it.skipIf(!canUnshareMount)(
    "older grub2 (no --update-bls-cmdline): grubby sets the managed keys to the files' values",
    async () => {
      const fx = host("GenuineIntel", {
        "/etc/default/grub": GRUB_OFF,
        "/usr/sbin/grub2-mkconfig": "",
        "/usr/sbin/grubby": "",
        "/boot/loader/entries/abc-5.14.0.conf": "title RHEL\noptions root=/dev/vda1 intel_iommu=off\n",
      });
      const p = await planIn(fx, IOMMU);
      const argv = command(p, "boot.update-grub")?.argv ?? [];
      const etc = tmp("etc-default");
      const fakes = tmp("fake-bin");
      try {
        writeFileSync(path.join(etc, "grub"), contentOf(p, "/etc/default/grub") ?? "");
        expect(runWithFakeRhelTools(argv, etc, fakes, "Usage: grub2-mkconfig [-o FILE]")).toEqual([
          "grub2-mkconfig -o /boot/grub2/grub.cfg",
          "grubby --update-kernel=ALL --remove-args=intel_iommu iommu amd_iommu",
          "grubby --update-kernel=ALL --args= intel_iommu=on iommu=pt",
        ]);
        // Undo: the same command after the original file is back puts the original value back.
        writeFileSync(path.join(etc, "grub"), GRUB_OFF);
        expect(runWithFakeRhelTools(argv, etc, fakes, "Usage: grub2-mkconfig [-o FILE]")).toEqual([
          "grub2-mkconfig -o /boot/grub2/grub.cfg",
          "grubby --update-kernel=ALL --remove-args=intel_iommu iommu amd_iommu",
          "grubby --update-kernel=ALL --args= intel_iommu=off",
        ]);
        // grub2 that rewrites BLS entries itself is left to do so.
        expect(
          runWithFakeRhelTools(argv, etc, fakes, "  --update-bls-cmdline  update the BLS entries"),
        ).toEqual(["grub2-mkconfig -o /boot/grub2/grub.cfg --update-bls-cmdline"]);
      } finally {
        rmSync(etc, { recursive: true, force: true });
        rmSync(fakes, { recursive: true, force: true });
      }
    },
  );
});
