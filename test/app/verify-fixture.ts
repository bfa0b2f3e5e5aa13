// A configured host, as `kvmstrap apply` leaves it, for the verify tests: KVM and VFIO modules
// loaded, IOMMU on (intel_iommu=on iommu=pt), a GPU and its audio function on vfio-pci, an SR-IOV
// PF with 2 VFs, and br0 over eno1 with carrier. `plannedRun` is the plan that promised all of it,
// journaled as done under <root>/var/lib/kvmstrap.
import path from "node:path";
import { Journal } from "../../src/apply/journal.js";
import type { Plan } from "../../src/plan/actions.js";
import { renderNetplan } from "../../src/plan/render/netplan.js";
import { buildVfioGpuHost, SysfsFixture, VFIO } from "../helpers/sysfs-fixture.js";

export const HOST = {
  pf: "0000:04:00.0",
  pfName: "enp4s0f0",
  vfs: ["0000:04:10.0", "0000:04:10.2"],
  mgmtPci: "0000:00:1f.6",
  uplink: "eno1",
  bridge: "br0",
  kernel: "6.1.0-18-amd64",
} as const;

export type Vendor = "GenuineIntel" | "AuthenticAMD";

export function buildConfiguredHost(vendor: Vendor = "GenuineIntel"): SysfsFixture {
  const fx = buildVfioGpuHost(new SysfsFixture());
  const intel = vendor === "GenuineIntel";
  fx.file(
    "/proc/cpuinfo",
    `processor\t: 0\nvendor_id\t: ${vendor}\nmodel name\t: test cpu\nflags\t\t: fpu lm ${intel ? "vmx ept" : "svm npt"}\n\n`,
  );
  fx.file("/proc/sys/kernel/osrelease", `${HOST.kernel}\n`);
  fx.file("/proc/sys/kernel/hostname", "node1\n");
  fx.file(
    "/proc/cmdline",
    `BOOT_IMAGE=/boot/vmlinuz-${HOST.kernel} root=/dev/sda1 ro ${intel ? "intel_iommu=on " : ""}iommu=pt\n`,
  );
  fx.file("/sys/firmware/acpi/tables/DMAR", "DMAR");
  for (const m of [
    "kvm",
    intel ? "kvm_intel" : "kvm_amd",
    "vhost_net",
    "vfio",
    "vfio_iommu_type1",
    "vfio_pci",
  ])
    fx.dir(`/sys/module/${m}/parameters`);
  fx.pci({
    address: "0000:00:1c.0",
    vendor: "8086",
    device: "a338",
    class: "060400",
    driver: "pcieport",
    iommuGroup: 20,
  });
  fx.pci({
    address: HOST.pf,
    parent: "0000:00:1c.0",
    vendor: "8086",
    device: "1521",
    class: "020000",
    driver: "igb",
    iommuGroup: 21,
    sriov: { totalVfs: 7, numVfs: 2 },
  });
  fx.netdev({ name: HOST.pfName, pci: HOST.pf, mac: "a0:36:9f:00:00:01", speed: 1000 });
  for (const [i, vf] of HOST.vfs.entries()) {
    fx.pci({
      address: vf,
      parent: "0000:00:1c.0",
      vendor: "8086",
      device: "1520",
      class: "020000",
      driver: "igbvf",
      iommuGroup: 22 + i,
      physfn: HOST.pf,
    });
  }
  fx.pci({
    address: HOST.mgmtPci,
    vendor: "8086",
    device: "15bc",
    class: "020000",
    driver: "e1000e",
    iommuGroup: 30,
  });
  fx.netdev({ name: HOST.uplink, pci: HOST.mgmtPci, mac: "3c:ec:ef:00:00:01", speed: 1000 });
  fx.netdev({ name: HOST.bridge, kind: "bridge", mac: "3c:ec:ef:00:00:01" });
  fx.enslave(HOST.uplink, HOST.bridge);
  fx.routes([{ iface: HOST.bridge, gateway: "0100000A", metric: 100 }]);
  fx.dir("/dev");
  return fx;
}

/** The plan that promised the configured host (as planned on it before the changes). */
export function configuredPlan(vendor: Vendor = "GenuineIntel"): Plan {
  const intel = vendor === "GenuineIntel";
  const netplan = renderNetplan({
    bridges: [
      { name: HOST.bridge, ports: [HOST.uplink], stp: false, vlanAware: false, dhcp: true, addresses: [] },
    ],
    bonds: [],
    vlans: [],
    ports: [{ name: HOST.uplink }],
  });
  return {
    schema: "kvmstrap.plan/1",
    answerDigest: "",
    refusals: [],
    needsReboot: true,
    actions: [
      {
        kind: "write-file",
        id: "kvm.modules-load",
        path: "/etc/modules-load.d/kvmstrap.conf",
        content: `# Managed by kvmstrap\nkvm\n${intel ? "kvm_intel" : "kvm_amd"}\nvhost_net\nvfio\nvfio_iommu_type1\nvfio_pci\n`,
        mode: 0o644,
        previous: null,
        effect: "none",
        summary: "modules",
      },
      {
        kind: "write-sysfs",
        id: `sriov.numvfs.${HOST.pfName}`,
        path: `/sys/bus/pci/devices/${HOST.pf}/sriov_numvfs`,
        value: "2",
        previous: "0",
        effect: "none",
        summary: "VFs",
      },
      {
        kind: "write-file",
        id: "network.file./etc/netplan/60-kvmstrap.yaml",
        path: "/etc/netplan/60-kvmstrap.yaml",
        content: netplan,
        mode: 0o600,
        previous: null,
        effect: "network",
        summary: "netplan",
      },
    ],
    expect: {
      cmdlineParams: intel ? ["intel_iommu=on", "iommu=pt"] : ["iommu=pt"],
      vfio: [VFIO.gpu, VFIO.audio],
      iommuGroups: true,
    },
  };
}

export async function journalRun(
  stateDir: string,
  plan: Plan,
  phase: "done" | "awaiting-reboot" | "failed" = "done",
): Promise<string> {
  const journal = new Journal(stateDir);
  const run = journal.create(plan);
  await journal.setPhase(run, phase, phase === "failed" ? { error: "kvm.modules-load: boom" } : {});
  return run.runId;
}

export const stateDirOfRoot = (root: string) => path.join(root, "var/lib/kvmstrap");
