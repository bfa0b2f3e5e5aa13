// Checks for the IOMMU: firmware (DMAR/IVRS), kernel (command line, groups), interrupt remapping, and
// how finely the groups isolate devices, which decides what can be passed through on its own.
import type { HostReport, PciDevice } from "../detect/types.js";
import { iommuAdvice, platformOf } from "./platform.js";
import { type Check, check } from "./types.js";

const isBridge = (d: PciDevice) =>
  (d.classId ?? "").startsWith("0604") || (d.classId ?? "").startsWith("0600");

export function iommuChecks(r: HostReport): Check[] {
  const { iommu, cpu } = r;
  const facts = Object.values(iommu.sources);
  const out: Check[] = [];
  const advice = iommuAdvice(platformOf(r));
  const title = `IOMMU (${advice.name}) for device passthrough`;
  const cmdline = (what: string) =>
    `${what} the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub; or /etc/kernel/cmdline with systemd-boot) and reboot.`;
  const offParams = ["intel_iommu", "amd_iommu", "iommu"].filter((k) =>
    /^(off|0)$/.test(iommu.cmdlineParams[k] ?? ""),
  );
  // Turning it on: drop any "off" first (it would win), then add what this platform needs, if anything.
  const enable = [
    offParams.length ? `Remove ${offParams.map((k) => `${k}=${iommu.cmdlineParams[k]}`).join(" ")} from` : "",
    advice.param ? `${offParams.length ? "and add" : "Add"} "${advice.param}" to` : "",
  ]
    .filter(Boolean)
    .join(" ");

  if (iommu.groupsPopulated) {
    out.push(
      check({
        id: "iommu.enabled",
        title,
        facts,
        level: "pass",
        state: "ok",
        reason: `the kernel uses the IOMMU: ${iommu.groups.length} IOMMU groups`,
      }),
    );
  } else if (iommu.acpiTable) {
    const explicitOff = offParams.length > 0;
    out.push(
      check({
        id: "iommu.enabled",
        title,
        facts,
        level: "warn",
        state: "disabled-in-kernel",
        reason: `the firmware reports an IOMMU (ACPI ${iommu.acpiTable}) but the kernel ${explicitOff ? "has it switched off on its command line" : "has not enabled it"}: no IOMMU groups`,
        remediation: enable
          ? cmdline(enable)
          : `Make sure the kernel's ${advice.name} driver is built in or loaded (dmesg shows why it did not start).`,
        reboot: true,
      }),
    );
  } else if (iommu.acpiTablesReadable) {
    out.push(
      check({
        id: "iommu.enabled",
        title,
        facts,
        level: "warn",
        state: cpu.hypervisor ? "unsupported" : "disabled-in-firmware",
        reason: cpu.hypervisor
          ? "no IOMMU: this machine is a guest and its hypervisor exposes no virtual IOMMU"
          : `no IOMMU: the firmware publishes no ${advice.name === "SMMU" ? "IORT" : "DMAR/IVRS"} table (disabled in the firmware setup, or unsupported by the platform)`,
        remediation: cpu.hypervisor
          ? advice.guestFix
          : advice.firmwareSetting
            ? `Enable ${advice.firmwareSetting} in the firmware setup${advice.param ? `, then add "${advice.param}" to the kernel command line` : ""}.`
            : advice.guestFix,
        reboot: true,
      }),
    );
  } else {
    out.push(
      check({
        id: "iommu.enabled",
        title,
        facts,
        level: "warn",
        state: "unknown",
        reason: "no IOMMU groups, and the ACPI tables were not readable to tell firmware from kernel",
        remediation: cpu.hypervisor
          ? advice.guestFix
          : [
              advice.firmwareSetting ? `Check the firmware setup for ${advice.firmwareSetting}` : "",
              advice.param ? `add "${advice.param}" to the kernel command line` : "",
            ]
              .filter(Boolean)
              .join("; ") || advice.guestFix,
        reboot: true,
      }),
    );
  }

  if (iommu.groupsPopulated && iommu.interruptRemapping === "no") {
    out.push(
      check({
        id: "iommu.interrupt-remapping",
        title: "IOMMU interrupt remapping",
        facts,
        level: "warn",
        state: "unsupported",
        reason: "interrupt remapping is off: VFIO refuses assignment unless unsafe interrupts are allowed",
        remediation: cpu.hypervisor
          ? "Give this VM an IOMMU with interrupt remapping on its host (QEMU: -device intel-iommu,intremap=on with a split irqchip), or (at your own risk) vfio_iommu_type1 allow_unsafe_interrupts=1."
          : "Enable x2APIC/interrupt remapping in the firmware setup, or (at your own risk) vfio_iommu_type1 allow_unsafe_interrupts=1.",
      }),
    );
  }

  if (iommu.groupsPopulated) {
    const byAddr = new Map(r.pci.map((d) => [d.address, d]));
    const shared = iommu.groups.filter(
      (g) =>
        g.devices.filter((a) => {
          const d = byAddr.get(a);
          return d && !isBridge(d);
        }).length > 1,
    );
    out.push(
      check({
        id: "iommu.isolation",
        title: "IOMMU group isolation",
        facts,
        level: "note",
        state: "info",
        reason: shared.length
          ? `${shared.length} of ${iommu.groups.length} groups hold more than one endpoint (they pass through together): ${shared
              .slice(0, 4)
              .map((g) => `group ${g.id} [${g.devices.join(" ")}]`)
              .join("; ")}${shared.length > 4 ? "; ..." : ""}`
          : "every endpoint has an IOMMU group of its own",
      }),
    );
  }
  return out;
}
