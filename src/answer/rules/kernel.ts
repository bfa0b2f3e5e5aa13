// Kernel command line: an answer that changes it (the IOMMU switch, 1 GiB hugepages) needs a
// bootloader the planner can edit; unknown means refused, not a plan that silently skips it.
import { type Rule, rule } from "./types.js";

export const kernelRules: Rule[] = [
  rule(
    "kernel.bootloader-unknown",
    "a kernel command line change needs a bootloader kvmstrap can edit",
    ({ answer, report }, emit) => {
      // Mirrors plan/kernel-plan's wantedCmdline: iommu.enabled (on adds, off removes) and 1G pages.
      const needs = answer.iommu !== undefined || (answer.kvm?.hugepages?.pages1G ?? 0) > 0;
      if (!needs || report.system.bootloader !== "unknown") return;
      emit.error(
        answer.iommu ? "iommu" : "kvm.hugepages",
        "no GRUB (/etc/default/grub) or systemd-boot (/etc/kernel/cmdline) found: the kernel command line cannot be changed",
        "set the parameters in the bootloader by hand, or drop iommu:/pages1G from the answer",
      );
    },
  ),
];
