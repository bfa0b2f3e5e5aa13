import { describe, expect, it } from "vitest";
import { type Answer, answerSchema } from "../../src/answer/schema.js";
import { validateAnswer } from "../../src/answer/validate.js";
import { describe as describe_ } from "../../src/apply/steps.js";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import type { Plan } from "../../src/plan/actions.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan, planFiles } from "../../src/plan/index.js";
import { HOSTS, SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import {
  buildDmarBridgeHost,
  buildSriovHost,
  buildVfioGpuHost,
  DMAR_BRIDGE,
  SRIOV,
  type SysfsFixture,
  VFIO,
} from "../helpers/sysfs-fixture.js";

const INTEL = `processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test Xeon\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu vmx ept pdpe1gb lm\n\n`;
const GRUB = 'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n';

const answer = (a: unknown): Answer => answerSchema.parse(a);
async function hostOf(fx: SysfsFixture): Promise<HostReport> {
  fx.file("/proc/cpuinfo", INTEL)
    .file("/etc/default/grub", GRUB)
    .dir("/etc/netplan")
    .file("/etc/netplan/50-cloud-init.yaml", "network: {version: 2}\n");
  return detectHost({ fs: fx.fs(), pciIds: null });
}
/** Plans the way the CLI does: a first pass names the files, their current content feeds the second. */
function planFor(
  report: HostReport,
  a: Answer,
  files: Record<string, string> = { "/etc/default/grub": GRUB },
): Plan {
  const paths = planFiles(report, a);
  return buildPlan(report, a, new Map(paths.map((p) => [p, files[p] ?? null])));
}
const ids = (p: Plan) => p.actions.map((x) => x.id);

describe("plan: KVM modules, hugepages and the kernel command line", () => {
  it("writes modprobe and modules-load files, reserves hugepages now and at boot, and edits GRUB for the IOMMU", async () => {
    const report = await hostOf(buildSriovHost());
    const p = planFor(
      report,
      answer({ version: 1, kvm: { nested: true, hugepages: { pages2M: 512 } }, iommu: { enabled: true } }),
    );
    expect(ids(p)).toEqual([
      "kvm.modprobe-conf",
      "kvm.modules-load",
      "kvm.hugepages-2m",
      "kvm.hugepages-2m-live",
      "boot.regenerate-on-undo",
      "resume.unit",
      "resume.enable",
      "boot.cmdline",
      "boot.update-grub",
    ]);
    expect(p.expect).toEqual({ cmdlineParams: ["intel_iommu=on", "iommu=pt"], vfio: [], iommuGroups: true });
    const grub = p.actions.find((a) => a.id === "boot.cmdline");
    expect(grub).toMatchObject({
      kind: "write-file",
      path: "/etc/default/grub",
      effect: "reboot",
      previous: GRUB,
    });
    expect(grub?.kind === "write-file" && grub.content).toContain(
      'GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"',
    );
    expect(p.needsReboot).toBe(true);
    const text = renderPlanText(p);
    expect(text).toContain('+GRUB_CMDLINE_LINUX="intel_iommu=on iommu=pt"');
    expect(text).toContain('-GRUB_CMDLINE_LINUX=""');
    expect(text).toContain("echo 512 > /proc/sys/vm/nr_hugepages");
  });

  it("plans nothing once the files already hold what the answer wants (convergence)", async () => {
    const report = await hostOf(buildSriovHost());
    const a = answer({ version: 1, kvm: { nested: true }, iommu: { enabled: true } });
    const first = planFor(report, a);
    const applied = Object.fromEntries(
      first.actions.flatMap((x) => (x.kind === "write-file" ? [[x.path, x.content]] : [])),
    ) as Record<string, string>;
    const second = planFor(report, a, applied);
    expect(second.actions).toEqual([]);
    expect(renderPlanText(second)).toContain("Nothing to change");
  });
});

describe("plan: VFIO passthrough refuses unsafe picks", () => {
  it("binds a GPU and its audio function together by PCI address, re-checking their ids at boot", async () => {
    const report = await hostOf(buildVfioGpuHost());
    const p = planFor(
      report,
      answer({
        version: 1,
        iommu: { enabled: true },
        passthrough: [{ device: { id: "10de:1b80" } }, { device: { id: "10de:10f0" } }],
      }),
    );
    expect(p.refusals).toEqual([]);
    const script = p.actions.find((a) => a.id === "vfio.script");
    expect(script?.kind === "write-file" && script.content).toContain(VFIO.gpu);
    expect(script?.kind === "write-file" && script.content).toContain(VFIO.audio);
    expect(script?.kind === "write-file" && script.content).not.toContain("vfio-pci.ids");
    expect(ids(p)).toEqual(expect.arrayContaining(["vfio.unit", "vfio.enable-unit", "kvm.modules-load"]));
  });
  it("refuses the GPU alone: its audio function shares IOMMU group 13", async () => {
    const report = await hostOf(buildVfioGpuHost());
    const p = planFor(
      report,
      answer({ version: 1, iommu: { enabled: true }, passthrough: [{ device: { address: VFIO.gpu } }] }),
    );
    expect(p.refusals).toEqual([
      {
        path: "passthrough[0].device",
        reason: expect.stringContaining(`shares IOMMU group ${VFIO.group} with ${VFIO.audio}`),
        ruleId: "passthrough.group-incomplete",
      },
    ]);
    expect(ids(p)).not.toContain("vfio.script");
  });
  it("plans the boot VGA when a second GPU remains (validate warns); refuses the only GPU whatever boot_vga says", async () => {
    const report = await hostOf(buildVfioGpuHost());
    const igpu = answer({
      version: 1,
      iommu: { enabled: true },
      passthrough: [{ device: { address: VFIO.igpu } }],
    });
    expect(planFor(report, igpu).refusals).toEqual([]);
    expect(validateAnswer(igpu, report).findings.map((f) => [f.ruleId, f.level])).toEqual([
      ["passthrough.boot-vga", "warning"],
    ]);
    const single = structuredClone(report);
    single.pci = single.pci.filter((d) => d.address !== VFIO.gpu && d.address !== VFIO.audio);
    for (const bootVga of [true, false, null]) {
      for (const d of single.pci) if (d.address === VFIO.igpu) d.bootVga = bootVga;
      expect(planFor(single, igpu).refusals.map((r) => r.ruleId)).toEqual(["passthrough.only-gpu"]);
    }
  });
  it("refuses the management NIC, and anything while the IOMMU stays off", async () => {
    const report = await hostOf(buildDmarBridgeHost());
    const mgmt = planFor(
      report,
      answer({
        version: 1,
        iommu: { enabled: true },
        passthrough: [{ device: { address: DMAR_BRIDGE.mgmtPci } }],
      }),
    );
    expect(mgmt.refusals[0]?.reason).toContain("management NIC");
    const off = planFor(
      report,
      answer({ version: 1, passthrough: [{ device: { address: DMAR_BRIDGE.otherPci } }] }),
    );
    expect(off.refusals.map((r) => r.ruleId)).toEqual(["passthrough.iommu-off"]);
  });
});

describe("plan: VFIO for devices a host driver holds now", () => {
  it("adds softdeps so vfio-pci loads first, and rebuilds the initramfs where those drivers live", async () => {
    const fx = buildVfioGpuHost();
    fx.bindDriver(VFIO.gpu, "nouveau").bindDriver(VFIO.audio, "snd_hda_intel");
    const report = await hostOf(fx);
    const p = planFor(
      report,
      answer({
        version: 1,
        iommu: { enabled: true },
        passthrough: [{ device: { address: VFIO.gpu } }, { device: { address: VFIO.audio } }],
      }),
    );
    const conf = p.actions.find((a) => a.id === "kvm.modprobe-conf");
    expect(conf?.kind === "write-file" && conf.content).toContain("softdep nouveau pre: vfio-pci");
    expect(conf?.kind === "write-file" && conf.content).toContain("softdep snd_hda_intel pre: vfio-pci");
    expect(p.actions.find((a) => a.id === "kvm.update-initramfs")).toMatchObject({
      argv: ["update-initramfs", "-u", "-k", "all"],
      effect: "reboot",
    });
  });
});

describe("plan: the host's identity follows the rule set", () => {
  it("plans no hostname or user the rules refused (values that got past the schema: a report-driven answer)", async () => {
    const report = await hostOf(buildSriovHost());
    const a = answer({ version: 1, host: { hostname: "kvm01", users: [{ name: "ops" }, { name: "dev" }] } });
    // Mutated after parsing, as a fleet layer or a hand-built object could: the rules still catch it.
    if (a.host) {
      a.host.hostname = Array(5).fill("a".repeat(60)).join(".");
      const dev = a.host.users[1];
      if (dev) dev.sshKeys = ["ssh-ed25519 AAAA\nssh-rsa injected"];
    }
    const p = planFor(report, a);
    expect(p.refusals.map((r) => r.path)).toEqual(expect.arrayContaining(["host.hostname"]));
    expect(ids(p)).not.toContain("host.hostname");
    expect(ids(p)).not.toContain("host.hostname-live");
    expect(ids(p)).toContain("host.user.ops");
    expect(ids(p).some((id) => id.startsWith("host.user.dev"))).toBe(false);
  });
  it("a password hash is a secret argument: the plan diff and the step's description redact it", async () => {
    const report = await hostOf(buildSriovHost());
    const hash =
      "$6$saltsalt$Qz8kVxY1oB5yY7oRkz7h5Q0Zc9m2o7hV1Ww3gq0o7Jm6n9f3x2qO1r0sT5uV8wX9yZ0aB1cD2eF3gH4iJ5kL6";
    const p = planFor(report, answer({ version: 1, host: { users: [{ name: "ops", passwordHash: hash }] } }));
    const step = p.actions.find((x) => x.id === "host.user.ops.password");
    expect(step?.kind === "run-command" && step.argv).toContain(hash);
    expect(renderPlanText(p)).not.toContain(hash);
    expect(renderPlanText(p)).toContain("usermod --password '[redacted]' ops");
    expect(step && describe_(step)).toBe("run usermod --password '[redacted]' ops");
  });
});

describe("plan: the libvirt NAT network", () => {
  it("writes the network XML and defines, autostarts and starts it, each with its inverse", async () => {
    const report = await hostOf(buildSriovHost());
    const p = planFor(report, answer({ version: 1, network: { libvirtNat: {} } }));
    expect(ids(p)).toEqual([
      "libvirt.network.default",
      "libvirt.network.default.define",
      "libvirt.network.default.autostart",
      "libvirt.network.default.start",
    ]);
    const xml = p.actions[0];
    expect(xml?.kind === "write-file" && xml.content).toContain('<bridge name="virbr0"');
    expect(p.actions[1]).toMatchObject({ undo: ["virsh", "net-undefine", "default"] });
  });
});

describe("plan: SR-IOV", () => {
  it("sets the VF count live and at boot, with a libvirt hostdev network per PF", async () => {
    const report = await hostOf(buildSriovHost());
    const p = planFor(report, answer({ version: 1, sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 4 }] }));
    expect(p.refusals).toEqual([]);
    const live = p.actions.find((a) => a.kind === "write-sysfs");
    expect(live).toMatchObject({
      path: `/sys/bus/pci/devices/${SRIOV.pf}/sriov_numvfs`,
      value: "4",
      previous: "2",
    });
    const define = p.actions.find((a) => a.id === `sriov.net-define.${SRIOV.pfName}-vfs`);
    expect(define).toMatchObject({
      kind: "run-command",
      undo: ["virsh", "net-undefine", `${SRIOV.pfName}-vfs`],
    });
  });
  it("refuses more VFs than sriov_totalvfs allows", async () => {
    const report = await hostOf(buildSriovHost());
    const p = planFor(report, answer({ version: 1, sriov: [{ pf: { name: SRIOV.pfName }, numVfs: 9 }] }));
    expect(p.refusals[0]).toMatchObject({
      path: "sriov[0].numVfs",
      reason: expect.stringContaining("supports at most 7"),
      ruleId: "sriov.total-vfs",
    });
  });
});

describe("plan: networking for the stack the host uses", () => {
  it("renders a netplan bridge that takes over the uplink's MAC, under the confirm timer", async () => {
    const report = await hostOf(buildSriovHost());
    expect(report.system.networkStack).toBe("netplan");
    const p = planFor(
      report,
      answer({
        version: 1,
        network: { bridges: [{ name: "br0", uplink: { name: SRIOV.pfName }, addresses: "dhcp" }] },
      }),
    );
    const file = p.actions.find((a) => a.kind === "write-file" && a.path === "/etc/netplan/60-kvmstrap.yaml");
    expect(file?.kind === "write-file" && file.content).toContain('macaddress: "a0:36:9f:00:00:01"');
    expect(file?.kind === "write-file" && file.mode).toBe(0o600);
    expect(p.actions.every((a) => a.effect === "network")).toBe(true);
    expect(ids(p)).toEqual([
      "network.reload-on-revert",
      "network.file./etc/netplan/60-kvmstrap.yaml",
      "network.reload",
    ]);
    expect(p.actions[0]).toMatchObject({ argv: ["true"], undo: ["netplan", "apply"] });
  });
});

describe.skipIf(!sharedHostsAvailable)("golden plans for the shared real-machine snapshots", () => {
  const standard = answer({
    version: 1,
    kvm: { nested: true, hugepages: { pages2M: 1024 }, ksm: true },
    iommu: { enabled: true },
  });
  for (const host of HOSTS) {
    it(`${host}: the standard KVM answer gives the recorded plan`, async () => {
      const report = await detectHost({ fs: new RootedHostFs(sharedHostRoot(host)), pciIds: null });
      const p = planFor(report, standard, {});
      expect(p.actions.length).toBeGreaterThan(0);
      await expect(`${JSON.stringify(p, null, 2)}\n`).toMatchFileSnapshot(`./golden/${host}.plan.json`);
    });
  }
});
if (!sharedHostsAvailable) it.skip(`golden plans: ${SKIP_REASON}`, () => {});
