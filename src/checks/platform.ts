// Which advice fits the machine: remediation names the virtualization extension, the KVM module, the
// IOMMU and its kernel options of the machine's own architecture and CPU vendor, and tells a guest
// to look at its outer host instead of its (virtual) firmware. Decided here once for every check.
import type { HostReport } from "../detect/types.js";

export type Arch = "x86" | "arm64" | "s390x" | "other";

export interface Platform {
  arch: Arch;
  /** The machine's own word for its architecture ("x86_64", "aarch64", "unknown"...). */
  name: string;
  vendor: "intel" | "amd" | null;
  /** This machine is itself a guest: fixes belong to its hypervisor, not to a BIOS. */
  guest: boolean;
}

export function platformOf(r: HostReport): Platform {
  const a = r.cpu.architecture;
  const arch: Arch =
    a === "x86_64" || a === "i686" ? "x86" : a === "aarch64" ? "arm64" : a === "s390x" ? "s390x" : "other";
  const v = r.cpu.vendor;
  const vendor = v === "GenuineIntel" ? "intel" : v === "AuthenticAMD" || v === "HygonGenuine" ? "amd" : null;
  return { arch, name: a, vendor, guest: r.cpu.hypervisor };
}

/** The hardware virtualization extension KVM needs, by name. */
export function virtName(p: Platform): string {
  if (p.arch === "arm64") return "EL2 (the Arm virtualization exception level)";
  if (p.arch === "s390x") return "SIE (Start Interpretive Execution)";
  if (p.vendor === "intel") return "VT-x";
  if (p.vendor === "amd") return "AMD-V";
  return p.arch === "x86" ? "VT-x/AMD-V" : "hardware virtualization";
}

/** The vendor KVM module on x86; elsewhere kvm itself carries the architecture (null). */
export function vendorModule(p: Platform): string | null {
  if (p.arch !== "x86") return null;
  return p.vendor === "amd" ? "kvm_amd" : "kvm_intel";
}

export interface IommuAdvice {
  /** What the IOMMU is called here. */
  name: string;
  /** Kernel parameters that turn it on for passthrough, or null when none is needed. */
  param: string | null;
  /** What to enable in the firmware setup, or null when there is no such setting. */
  firmwareSetting: string | null;
  /** How a guest gets a virtual IOMMU from its host. */
  guestFix: string;
}

export function iommuAdvice(p: Platform): IommuAdvice {
  if (p.arch === "arm64")
    return {
      name: "SMMU",
      param: null,
      firmwareSetting: "the SMMU",
      guestFix: "Give this VM a virtual IOMMU (QEMU: -machine virt,iommu=smmuv3, or a virtio-iommu device).",
    };
  if (p.arch === "s390x")
    return {
      name: "zPCI IOMMU",
      param: null,
      firmwareSetting: null,
      guestFix: "Assign zPCI functions to this guest on its host (passthrough needs them).",
    };
  // AMD-Vi is on by default: amd_iommu has no "on" value, so only passthrough mode is asked for.
  const amd = p.vendor === "amd";
  return {
    name: amd ? "AMD-Vi" : p.vendor === "intel" ? "VT-d" : "VT-d/AMD-Vi",
    param: amd ? "iommu=pt" : "intel_iommu=on iommu=pt",
    firmwareSetting: amd
      ? '"IOMMU" (also "AMD-Vi")'
      : '"VT-d" (also "Intel Virtualization Technology for Directed I/O")',
    guestFix:
      "Give this VM a virtual IOMMU (intel-iommu device with caching-mode=on) if passthrough is needed.",
  };
}
