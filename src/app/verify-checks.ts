// The checks `kvmstrap verify` makes from a host report: modules, the functional KVM probe, kernel
// parameters, IOMMU groups, vfio-pci bindings, VFs and bridges. Pure: the use case (verify.ts) reads
// the host and adds the checks that need libvirt (pools, the test VM) and the journal.
import { verifyAfterReboot } from "../apply/verify.js";
import type { HostReport } from "../detect/types.js";
import type { Promises } from "./verify-promises.js";
import type { VerifyCheck, VerifyStatus } from "./verify-result.js";

/** Where a module stands: in /sys/module, listed in modules.builtin, neither, or not captured. */
export type ModuleState = "loaded" | "builtin" | "present" | "absent" | "unknown";

/** What a loaded (or built-in) module leaves besides /sys/module, where a built-in module without
 *  parameters has no entry (and a kernel without loadable modules has no modules.builtin). */
export const MODULE_SIGNS: Record<string, string> = {
  kvm: "/dev/kvm",
  vhost_net: "/dev/vhost-net",
  vfio: "/dev/vfio/vfio",
  vfio_pci: "/sys/bus/pci/drivers/vfio-pci",
};

export interface HostFacts {
  report: HostReport;
  /** The running host (not a tree): live-only checks run. */
  live: boolean;
  modules: ReadonlyMap<string, ModuleState>;
}

export const NOT_ON_TREE = "unknown: not checked on a tree (live-only check)";

const c = (
  id: string,
  status: VerifyStatus,
  expected: string,
  found: string,
  where: string[],
): VerifyCheck => ({
  id,
  status,
  expected,
  found,
  where,
});

/** The KVM module for the CPU vendor this host reports; null when the vendor has none we know. */
export function vendorModuleOf(vendor: string | null): "kvm_intel" | "kvm_amd" | null {
  if (vendor === "GenuineIntel") return "kvm_intel";
  if (vendor === "AuthenticAMD" || vendor === "HygonGenuine") return "kvm_amd";
  return null;
}

function moduleChecks(p: Promises, f: HostFacts): VerifyCheck[] {
  const out: VerifyCheck[] = [];
  const vendor = vendorModuleOf(f.report.cpu.vendor);
  const virt = f.report.cpu.virt;
  // Without VT-x/AMD-V in the CPU (a guest without nested virtualization, a firmware lock) the KVM
  // modules cannot load: that is a failure of the promise only when the answer requires KVM.
  const kvmSoft = !p.kvmRequired && virt === null;
  const names = [...p.modules];
  if (p.kvm && vendor) names.push(vendor);
  for (const m of names) {
    const state = f.modules.get(m) ?? "unknown";
    const where = [`/sys/module/${m}`, `modprobe -v ${m}`, "journalctl -b -u systemd-modules-load"];
    const isKvm = m === "kvm" || m === vendor;
    if (state === "loaded") out.push(c(`module.${m}`, "pass", `${m} loaded`, "loaded", where));
    else if (state === "builtin")
      out.push(c(`module.${m}`, "pass", `${m} loaded`, "built into the kernel", where));
    else if (state === "present")
      out.push(
        c(
          `module.${m}`,
          "pass",
          `${m} loaded`,
          `in the kernel (${MODULE_SIGNS[m] ?? "its device"} exists)`,
          where,
        ),
      );
    else if (state === "unknown")
      out.push(c(`module.${m}`, "unknown", `${m} loaded`, "the tree has no /sys/module", where));
    else {
      const why = isKvm && virt === null ? " (the CPU reports no VT-x/AMD-V, so it cannot load)" : "";
      out.push(
        c(`module.${m}`, isKvm && kvmSoft ? "warn" : "fail", `${m} loaded`, `not loaded${why}`, where),
      );
    }
  }
  if (p.kvm && !vendor) {
    out.push(
      c(
        "module.kvm-vendor",
        "unknown",
        "the CPU vendor's KVM module loaded",
        `no KVM module known for CPU vendor ${f.report.cpu.vendor ?? "unknown"}`,
        ["/proc/cpuinfo", "/sys/module"],
      ),
    );
  }
  return out;
}

function kvmProbeCheck(p: Promises, f: HostFacts): VerifyCheck {
  const where = ["kvmstrap detect --probe always", "/dev/kvm", "/run/kvmstrap/kvm-probe.json"];
  const expected = p.kvmRequired ? "KVM runs guests (required by the answer)" : "KVM runs guests";
  if (!f.live) return c("kvm.functional", "unknown", expected, NOT_ON_TREE, where);
  const probe = f.report.kvm.probe;
  if (probe.verdict === "usable") return c("kvm.functional", "pass", expected, probe.detail, where);
  if (probe.verdict === "not-run") return c("kvm.functional", "unknown", expected, probe.detail, where);
  // This is the case on nested hosts and CI machines: VMs still run, under TCG.
  const found = `${probe.verdict}: ${probe.detail}; VMs run under TCG (emulation)`;
  return c("kvm.functional", p.kvmRequired ? "fail" : "warn", expected, found, where);
}

function rebootChecks(p: Promises, f: HostFacts): VerifyCheck[] {
  const out: VerifyCheck[] = [];
  const expect = { ...p.expect, iommuGroups: false };
  const mismatches = verifyAfterReboot(expect, f.report);
  const bad = new Map(mismatches.map((m) => [`${m.kind}:${m.item}`, m]));
  for (const param of p.expect.cmdlineParams) {
    const key = param.split("=", 1)[0] ?? param;
    const m = bad.get(`cmdline:${key}`);
    const where = ["/proc/cmdline", "/etc/default/grub", "update-grub"];
    out.push(c(`cmdline.${key}`, m ? "fail" : "pass", param, m ? m.actual : param, where));
  }
  const iommuWanted = p.expect.iommuGroups === true || p.expect.vfio.length > 0 || p.vfs.length > 0;
  if (iommuWanted) {
    const groups = f.report.iommu.groups.length;
    const on = f.report.iommu.groupsPopulated;
    const table = f.report.iommu.acpiTable;
    out.push(
      c(
        "iommu.groups",
        on ? "pass" : "fail",
        "IOMMU on, with groups",
        on
          ? `${groups} IOMMU groups`
          : `no IOMMU groups (ACPI table ${table ?? "none found"}): the IOMMU is off in firmware or on the command line`,
        ["/sys/kernel/iommu_groups", "/proc/cmdline", "dmesg | grep -i -e DMAR -e IOMMU -e AMD-Vi"],
      ),
    );
  }
  for (const address of p.expect.vfio) {
    const m = bad.get(`vfio:${address}`);
    const where = [
      `/sys/bus/pci/devices/${address}/driver`,
      `/sys/bus/pci/devices/${address}/driver_override`,
      "journalctl -b -u kvmstrap-vfio-bind",
    ];
    out.push(
      c(
        `vfio.${address}`,
        m ? "fail" : "pass",
        "bound to vfio-pci",
        m ? m.actual : "bound to vfio-pci",
        where,
      ),
    );
  }
  return out;
}

function vfChecks(p: Promises, f: HostFacts): VerifyCheck[] {
  return p.vfs.map((v) => {
    const dev = f.report.pci.find((d) => d.address === v.pci);
    const where = [
      `/sys/bus/pci/devices/${v.pci}/sriov_numvfs`,
      `/sys/bus/pci/devices/${v.pci}/virtfn*`,
      "journalctl -b -u kvmstrap-sriov",
    ];
    const expected = `${v.count} VFs on ${v.pf} (${v.pci})`;
    if (!dev) return c(`sriov.${v.pf}`, "fail", expected, `PF ${v.pci} not present`, where);
    const numVfs = dev.sriov?.numVfs ?? 0;
    const present = dev.sriov?.vfs.length ?? 0;
    const ok = numVfs === v.count && present === v.count;
    const found = `sriov_numvfs=${numVfs}, ${present} VF function(s) present`;
    return c(`sriov.${v.pf}`, ok ? "pass" : "fail", expected, found, where);
  });
}

function bridgeChecks(p: Promises, f: HostFacts): VerifyCheck[] {
  return p.bridges.map((name) => {
    const where = [`/sys/class/net/${name}/carrier`, `ip -br link show master ${name}`, "networkctl status"];
    const expected = `bridge ${name} present, with carrier (a port up)`;
    const br = f.report.nics.find((n) => n.name === name);
    if (!br) return c(`bridge.${name}`, "fail", expected, `bridge ${name} does not exist`, where);
    if (br.kind !== "bridge")
      return c(
        `bridge.${name}`,
        "fail",
        expected,
        `${name} is a ${br.kind ?? "netdev"}, not a bridge`,
        where,
      );
    const ports = f.report.nics.filter((n) => n.master === name);
    const list = ports.length
      ? ports
          .map((n) => `${n.name} (${n.operstate ?? "?"}${n.carrier ? ", carrier" : ", no carrier"})`)
          .join(", ")
      : "no ports";
    if (br.carrier === true) return c(`bridge.${name}`, "pass", expected, `carrier; ports: ${list}`, where);
    const state = br.carrier === null ? "carrier unknown" : "no carrier";
    return c(
      `bridge.${name}`,
      br.carrier === null ? "unknown" : "fail",
      expected,
      `bridge ${name}: ${state}; ports: ${list}`,
      where,
    );
  });
}

/** Every check that a host report answers. */
export function hostChecks(p: Promises, f: HostFacts): VerifyCheck[] {
  return [
    ...moduleChecks(p, f),
    kvmProbeCheck(p, f),
    ...rebootChecks(p, f),
    ...vfChecks(p, f),
    ...bridgeChecks(p, f),
  ];
}
