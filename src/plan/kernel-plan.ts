// KVM modules and their options, hugepages, KSM, and the kernel command line (IOMMU, 1G pages),
// written for the bootloader the host actually uses. Command-line changes need a reboot; the
// parameters are listed so the resumed run can verify /proc/cmdline against them.

import { currentOf, type PlanContext, planCommand, planFile, planSysfs, refuse } from "./context.js";
import {
  editGrubDefault,
  editKernelCmdline,
  renderHugepagesSysctl,
  renderModprobeConf,
  renderModulesLoad,
} from "./render/kernel.js";

export const PATHS = {
  modprobe: "/etc/modprobe.d/kvmstrap.conf",
  modulesLoad: "/etc/modules-load.d/kvmstrap.conf",
  grub: "/etc/default/grub",
  kernelCmdline: "/etc/kernel/cmdline",
  hugepages: "/etc/sysctl.d/60-kvmstrap-hugepages.conf",
  ksm: "/etc/tmpfiles.d/kvmstrap-ksm.conf",
} as const;

export function vendorModule(ctx: PlanContext): "kvm_intel" | "kvm_amd" {
  return ctx.report.cpu.vendor === "AuthenticAMD" || ctx.report.cpu.vendor === "HygonGenuine"
    ? "kvm_amd"
    : "kvm_intel";
}

/** Kernel parameters the answer asks for; also what the post-reboot check expects in /proc/cmdline. */
export function wantedCmdline(ctx: PlanContext): string[] {
  const params: string[] = [];
  const { iommu, kvm } = ctx.answer;
  if (iommu?.enabled) {
    params.push(vendorModule(ctx) === "kvm_amd" ? "amd_iommu=on" : "intel_iommu=on");
    if (iommu.passthroughMode) params.push("iommu=pt");
  }
  if (kvm?.hugepages?.pages1G) {
    params.push("hugepagesz=1G", `hugepages=${kvm.hugepages.pages1G}`);
  }
  return params;
}

export function planKernel(ctx: PlanContext, vfioSoftdeps: string[], extraModules: string[]): void {
  const { kvm } = ctx.answer;
  const vendor = vendorModule(ctx);
  const wantsModules = kvm !== undefined || extraModules.length > 0 || vfioSoftdeps.length > 0;
  if (wantsModules) {
    planFile(ctx, {
      id: "kvm.modprobe-conf",
      path: PATHS.modprobe,
      content: renderModprobeConf({ vendorModule: vendor, nested: kvm?.nested, vfioSoftdeps }),
      effect: "module-reload",
      summary: `module options for ${vendor}${kvm?.nested !== undefined ? ` (nested=${kvm.nested ? 1 : 0})` : ""}`,
    });
    // Drivers in the initramfs would claim a passthrough device before vfio-pci: the softdeps must
    // be in the initramfs too.
    if (
      vfioSoftdeps.length &&
      currentOf(ctx, PATHS.modprobe) !==
        renderModprobeConf({ vendorModule: vendor, nested: kvm?.nested, vfioSoftdeps })
    ) {
      planCommand(ctx, {
        id: "kvm.update-initramfs",
        argv: ["update-initramfs", "-u", "-k", "all"],
        effect: "reboot",
        summary: `rebuild the initramfs so vfio-pci loads before ${vfioSoftdeps.join(", ")}`,
      });
    }
    const modules = [...new Set([...(kvm?.modules ?? ["kvm", vendor, "vhost_net"]), ...extraModules])];
    planFile(ctx, {
      id: "kvm.modules-load",
      path: PATHS.modulesLoad,
      content: renderModulesLoad(modules),
      effect: "none",
      summary: `load ${modules.join(", ")} at boot`,
    });
  }

  const pages2M = kvm?.hugepages?.pages2M;
  if (pages2M !== undefined) {
    const changed = planFile(ctx, {
      id: "kvm.hugepages-2m",
      path: PATHS.hugepages,
      content: renderHugepagesSysctl(pages2M),
      effect: "none",
      summary: `reserve ${pages2M} x 2 MiB hugepages at boot`,
    });
    const now = ctx.report.memory.hugepages["2048kB"]?.total;
    if (changed || now !== pages2M) {
      planSysfs(ctx, {
        id: "kvm.hugepages-2m-live",
        path: "/proc/sys/vm/nr_hugepages",
        value: String(pages2M),
        previous: now === undefined ? null : String(now),
        effect: "none",
        summary: `reserve ${pages2M} x 2 MiB hugepages now`,
      });
    }
  }
  if (kvm?.hugepages?.pages1G && !ctx.report.cpu.pdpe1gb) {
    refuse(ctx, "kvm.hugepages.pages1G", "this CPU has no pdpe1gb flag: 1 GiB hugepages are not supported");
  }
  if (kvm?.ksm !== undefined) {
    const run = kvm.ksm ? "1" : "0";
    planFile(ctx, {
      id: "kvm.ksm",
      path: PATHS.ksm,
      content: `# kvmstrap: kernel samepage merging\nw /sys/kernel/mm/ksm/run - - - - ${run}\n`,
      effect: "none",
      summary: `KSM ${kvm.ksm ? "on" : "off"} at boot`,
    });
    const ksmNow = ctx.report.memory.ksm.run;
    planSysfs(ctx, {
      id: "kvm.ksm-live",
      path: "/sys/kernel/mm/ksm/run",
      value: run,
      previous: ksmNow === "unknown" ? null : ksmNow === "yes" ? "1" : "0",
      effect: "none",
      summary: `KSM ${kvm.ksm ? "on" : "off"} now`,
    });
  }
  planCmdline(ctx);
}

function planCmdline(ctx: PlanContext): void {
  const add = wantedCmdline(ctx);
  const remove = ctx.answer.iommu?.enabled === false ? ["intel_iommu", "amd_iommu", "iommu"] : [];
  if (add.length === 0 && remove.length === 0) return;
  const bootloader = ctx.report.system.bootloader;
  if (bootloader === "grub") {
    const before = currentOf(ctx, PATHS.grub) ?? "";
    const changed = planFile(ctx, {
      id: "boot.cmdline",
      path: PATHS.grub,
      content: editGrubDefault(before, add, remove),
      effect: "reboot",
      summary: `kernel command line: ${add.join(" ") || `remove ${remove.join(", ")}`} (GRUB)`,
    });
    if (changed) {
      planCommand(ctx, {
        id: "boot.update-grub",
        argv: ["update-grub"],
        effect: "reboot",
        summary: "regenerate grub.cfg",
      });
    }
  } else if (bootloader === "systemd-boot") {
    const before = currentOf(ctx, PATHS.kernelCmdline) ?? "";
    const changed = planFile(ctx, {
      id: "boot.cmdline",
      path: PATHS.kernelCmdline,
      content: editKernelCmdline(before, add, remove),
      effect: "reboot",
      summary: `kernel command line: ${add.join(" ")} (systemd-boot)`,
    });
    if (changed) {
      planCommand(ctx, {
        id: "boot.refresh-entries",
        argv: ["kernel-install", "add", "--verbose"],
        effect: "reboot",
        summary: "rewrite the boot entries with the new command line",
      });
    }
  } else {
    refuse(
      ctx,
      ctx.answer.iommu ? "iommu" : "kvm.hugepages",
      "no GRUB (/etc/default/grub) or systemd-boot (/etc/kernel/cmdline) found: the kernel command line cannot be changed",
    );
  }
}
