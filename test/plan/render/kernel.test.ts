import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  editGrubDefault,
  editGrubFiles,
  editKernelCmdline,
  editParams,
  renderHugepagesSysctl,
  renderModprobeConf,
  renderModulesLoad,
} from "../../../src/plan/render/kernel.js";
import { has, run, tmp } from "./helpers.js";

const GRUB = `# If you change this file, run 'update-grub' afterwards.
GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=\`lsb_release -i -s 2> /dev/null || echo Debian\`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 iommu=soft"
#GRUB_TERMINAL=console
`;

describe("kernel command line", () => {
  it("adds to GRUB_CMDLINE_LINUX only, keeping every other line and parameter", () => {
    const out = editGrubDefault(GRUB, ["intel_iommu=on", "iommu=pt"]);
    expect(out).toBe(
      GRUB.replace(
        'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 iommu=soft"',
        'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 iommu=pt intel_iommu=on"',
      ),
    );
  });

  it("is idempotent and keeps one copy of each key", () => {
    const once = editGrubDefault(GRUB, ["intel_iommu=on", "iommu=pt"]);
    expect(editGrubDefault(once, ["intel_iommu=on", "iommu=pt"])).toBe(once);
    expect(editGrubDefault(editGrubDefault(once, ["intel_iommu=on"]), ["intel_iommu=on"])).toBe(once);
    expect(editParams(["a=1", "b", "a=2"], ["a=3"])).toEqual(["a=3", "b"]);
    expect(editParams(["quiet"], ["quiet"])).toEqual(["quiet"]);
  });

  it("removes by key or by exact key=value; repeated keys such as console= stay unless named", () => {
    const on = editGrubDefault(GRUB, ["intel_iommu=on", "iommu=pt"]);
    expect(editGrubDefault(on, [], ["intel_iommu", "amd_iommu", "iommu"])).toContain(
      'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"',
    );
    expect(editParams(["iommu=pt", "iommu=soft"], [], ["iommu=soft"])).toEqual(["iommu=pt"]);
  });

  it("edits the last assignment, keeps single quotes, and appends one when absent", () => {
    const two = `GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX='b'\n`;
    expect(editGrubDefault(two, ["c"])).toBe(`GRUB_CMDLINE_LINUX="a"\nGRUB_CMDLINE_LINUX='b c'\n`);
    expect(editGrubDefault("GRUB_DEFAULT=0", ["x=1"])).toBe('GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX="x=1"\n');
    expect(editGrubDefault('GRUB_CMDLINE_LINUX=""\n', ["iommu=pt"])).toBe('GRUB_CMDLINE_LINUX="iommu=pt"\n');
    expect(() => editGrubDefault(GRUB, ["bad param"])).toThrow();
  });

  it("the edited /etc/default/grub still parses as shell and yields the new value", () => {
    const dir = tmp("grub");
    try {
      const file = path.join(dir, "grub");
      writeFileSync(file, editGrubDefault(GRUB, ["intel_iommu=on", "iommu=pt"]));
      const r = run(["sh", "-c", '. "$0" && printf %s "$GRUB_CMDLINE_LINUX"', file]);
      expect(r.stdout).toBe("console=tty0 console=ttyS0,115200n8 iommu=pt intel_iommu=on");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("systemd-boot /etc/kernel/cmdline", () => {
    const cur = "root=UUID=1234 ro quiet\n";
    const once = editKernelCmdline(cur, ["intel_iommu=on", "iommu=pt"]);
    expect(once).toBe("root=UUID=1234 ro quiet intel_iommu=on iommu=pt\n");
    expect(editKernelCmdline(once, ["intel_iommu=on", "iommu=pt"])).toBe(once);
    expect(editKernelCmdline(once, [], ["iommu", "intel_iommu"])).toBe(cur);
  });
});

describe("kernel command line across /etc/default/grub and its drop-ins", () => {
  it("strips conflicts from every assignment, keeps export, comments and other words", () => {
    const files = [
      {
        path: "/etc/default/grub",
        content:
          "export GRUB_CMDLINE_LINUX_DEFAULT=\"quiet intel_iommu=off\" # set by the installer\nGRUB_CMDLINE_LINUX=''\n",
      },
      {
        path: "/etc/default/grub.d/90-x.cfg",
        content: 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT iommu=off"\n',
      },
    ];
    const [grub, dropIn] = editGrubFiles(files, ["intel_iommu=on"], ["iommu=off"]);
    expect(grub?.content).toBe(
      "export GRUB_CMDLINE_LINUX_DEFAULT=\"quiet\" # set by the installer\nGRUB_CMDLINE_LINUX='intel_iommu=on'\n",
    );
    expect(dropIn?.content).toBe('GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT"\n');
    const again = editGrubFiles([grub, dropIn] as typeof files, ["intel_iommu=on"], ["iommu=off"]);
    expect(again.map((f) => f.content)).toEqual([grub?.content, dropIn?.content]);
  });

  it("adds to the last GRUB_CMDLINE_LINUX of the whole sequence, the one that wins", () => {
    const files = [
      { path: "/etc/default/grub", content: 'GRUB_CMDLINE_LINUX="a"\n' },
      { path: "/etc/default/grub.d/50.cfg", content: 'GRUB_CMDLINE_LINUX="b"\n' },
    ];
    const out = editGrubFiles(files, ["x=1"]);
    expect(out.map((f) => f.content)).toEqual(['GRUB_CMDLINE_LINUX="a"\n', 'GRUB_CMDLINE_LINUX="b x=1"\n']);
  });
});

describe("modules and sysctl", () => {
  const dir = tmp("modprobe");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const conf = renderModprobeConf({
    vendorModule: "kvm_intel",
    nested: true,
    vfioSoftdeps: ["nouveau", "snd_hda_intel", "nouveau"],
  });

  it("renders options and softdeps, modules-load and hugepages", () => {
    expect(conf).toContain("options kvm_intel nested=1\n");
    expect(conf.match(/softdep nouveau pre: vfio-pci/g)).toHaveLength(1);
    expect(conf).toContain("softdep snd_hda_intel pre: vfio-pci\n");
    expect(renderModprobeConf({ vendorModule: "kvm_amd" })).not.toContain("options");
    expect(
      renderModulesLoad(["kvm", "vhost_net", "kvm"])
        .split("\n")
        .filter((l) => l && !l.startsWith("#")),
    ).toEqual(["kvm", "vhost_net"]);
    expect(() => renderModulesLoad(["bad module"])).toThrow();
    expect(renderHugepagesSysctl(1024)).toMatch(/^vm\.nr_hugepages = 1024$/m);
    expect(() => renderHugepagesSysctl(-1)).toThrow();
  });

  const tool = has("modprobe");
  if (!tool) it.skip("modprobe --showconfig: kmod is not installed", () => {});
  it.skipIf(!tool)("kmod parses the modprobe.d file without complaint (modprobe -C DIR --showconfig)", () => {
    mkdirSync(path.join(dir, "d"), { recursive: true });
    writeFileSync(path.join(dir, "d", "kvmstrap.conf"), conf);
    const r = run(["modprobe", "-C", path.join(dir, "d"), "--showconfig"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/ignoring|error/i);
    expect(r.stdout).toContain("options kvm_intel nested=1");
    expect(r.stdout).toContain("softdep snd_hda_intel pre: vfio-pci");
  });
});
