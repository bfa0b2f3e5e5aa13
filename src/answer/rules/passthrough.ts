// Passthrough safety. A device handed to a guest (by passthrough: at boot, or a VM's passthrough at
// its start) leaves the host with its whole IOMMU group, so: never the management NIC, the controller
// of a disk the host runs from, a PCI bridge, the only GPU, or anything sharing a group with those;
// the boot VGA only with a warning; the group passes whole (bridges exempt); the IOMMU must be on.
import type { PciDevice } from "../../detect/types.js";
import { nicLabel, pciLabel } from "../match.js";
import { type Facts, isGpu, isPciBridge } from "./facts.js";
import { type Emit, type Rule, type RuleInput, rule } from "./types.js";

/** Every passthrough entry of the answer, host and VM, with its key path and chosen device. */
export function passthroughEntries(facts: Facts): { path: string; dev: PciDevice; host: boolean }[] {
  return facts.matches.flatMap((m) => {
    if (m.kind !== "pci") return [];
    const dev = facts.pci(m.path);
    return dev ? [{ path: m.path, dev, host: m.path.startsWith("passthrough[") }] : [];
  });
}

/** Why losing this device would cut the host off, or null. */
function hazard(facts: Facts, address: string): string | null {
  const nic = facts.managementByPci.get(address);
  if (nic) return `the management NIC ${nicLabel(nic)} (${address})`;
  const disk = facts.bootControllers.get(address);
  if (disk) return `the controller of ${disk.name}, which holds ${disk.roles.join(", ")} (${address})`;
  return null;
}

type Entry = ReturnType<typeof passthroughEntries>[number];

const groupOf = (dev: PciDevice, report: RuleInput["report"]) =>
  dev.iommuGroup === null ? null : (report.iommu.groups.find((g) => g.id === dev.iommuGroup) ?? null);

/** A check run once per passthrough entry, host and VM alike. */
const each =
  (check: (e: Entry, emit: Emit, facts: Facts) => void) =>
  ({ facts }: RuleInput, emit: Emit): void => {
    for (const e of passthroughEntries(facts)) check(e, emit, facts);
  };

export const passthroughRules: Rule[] = [
  rule(
    "passthrough.iommu-off",
    "passthrough needs the IOMMU on (or enabled by this answer, then a reboot)",
    ({ answer, report, facts }, emit) => {
      const entries = passthroughEntries(facts);
      if (report.iommu.groupsPopulated || (!entries.length && !answer.passthrough.length)) return;
      const path = answer.passthrough.length ? "passthrough" : (entries[0]?.path ?? "passthrough");
      if (answer.iommu?.enabled !== true)
        emit.error(
          path,
          "passthrough needs the IOMMU, which is off on this host (no IOMMU groups): set iommu.enabled: true (and enable VT-d/AMD-Vi in the firmware)",
        );
      else
        emit.warning(
          "iommu.enabled",
          "the IOMMU is off now: the host must reboot with it enabled before passthrough devices can be bound",
        );
    },
  ),
  rule(
    "passthrough.management-nic",
    "the management NIC (default route) is never passed through",
    each(({ path, dev }, emit, facts) => {
      const nic = facts.managementByPci.get(dev.address);
      if (nic)
        emit.error(
          path,
          `${dev.address} is the management NIC ${nicLabel(nic)} (${dev.address}): passing it through would cut this host off`,
          "pass through another NIC; the one carrying the default route stays with the host",
        );
    }),
  ),
  rule(
    "passthrough.boot-disk-controller",
    "the controller of a disk holding /, /boot, the ESP, swap or the boot medium stays with the host",
    each(({ path, dev }, emit, facts) => {
      const disk = facts.bootControllers.get(dev.address);
      if (disk)
        emit.error(
          path,
          `${dev.address} is the controller of ${disk.name}, which holds ${disk.roles.join(", ")} (${dev.address}): passing it through would cut this host off`,
        );
    }),
  ),
  rule(
    "passthrough.pci-bridge",
    "PCI bridges stay with the host (they are exempt from group viability)",
    each(({ path, dev }, emit) => {
      if (isPciBridge(dev))
        emit.error(
          path,
          `${dev.address} is a PCI bridge: bridges stay with the host; pick the endpoints behind it`,
        );
    }),
  ),
  rule(
    "passthrough.only-gpu",
    "the host's only GPU is never passed through, whatever boot_vga says",
    each(({ path, dev }, emit, facts) => {
      if (isGpu(dev) && facts.gpus.length === 1)
        emit.error(
          path,
          `${pciLabel(dev)} is ${dev.bootVga ? "the boot VGA and the only GPU" : "the only GPU of this host"}: the host console would go dark`,
          "add a second GPU (or use the integrated one for the host) before passing this one through",
        );
    }),
  ),
  rule(
    "passthrough.boot-vga",
    "the boot VGA (with another GPU present) is passed through only with a warning",
    each(({ path, dev }, emit, facts) => {
      if (dev.bootVga === true && facts.gpus.length > 1)
        emit.warning(
          path,
          `${dev.address} is the boot VGA: the firmware and the host console use it until vfio-pci takes it`,
          "make the other GPU primary in the firmware setup if the console should stay visible",
        );
    }),
  ),
  rule(
    "passthrough.group-hazard",
    "nothing sharing an IOMMU group with the management NIC or a boot disk's controller",
    ({ report, facts }, emit) => {
      for (const { path, dev } of passthroughEntries(facts)) {
        // A device refused for itself (a hazard, a bridge) needs no second word about its group.
        if (!report.iommu.groupsPopulated || hazard(facts, dev.address) || isPciBridge(dev)) continue;
        for (const other of groupOf(dev, report)?.devices ?? []) {
          if (other === dev.address || isPciBridge(facts.pciByAddress.get(other))) continue;
          const h = hazard(facts, other);
          if (h)
            emit.error(
              path,
              `${dev.address} shares IOMMU group ${dev.iommuGroup} with ${h}: the whole group goes to the guest together`,
            );
        }
      }
    },
  ),
  rule(
    "passthrough.group-incomplete",
    "a group passes through whole: every endpoint in passthrough:, bridges exempt",
    ({ answer, report, facts }, emit) => {
      if (!report.iommu.groupsPopulated) return;
      const host = passthroughEntries(facts).filter((e) => e.host);
      const chosen = new Set(host.map((e) => e.dev.address));
      answer.passthrough.forEach((_, i) => {
        const e = host.find((x) => x.path === `passthrough[${i}].device`);
        // A device refused for itself needs no second word about its group.
        if (!e || hazard(facts, e.dev.address) || isPciBridge(e.dev)) return;
        const group = groupOf(e.dev, report);
        const left = (group?.devices ?? []).filter(
          (a) => !chosen.has(a) && facts.pciByAddress.has(a) && !isPciBridge(facts.pciByAddress.get(a)),
        );
        if (left.length && !left.some((a) => hazard(facts, a)))
          emit.error(
            e.path,
            `${e.dev.address} shares IOMMU group ${group?.id} with ${left.join(", ")}: add them to passthrough too, or the group cannot be assigned`,
          );
      });
    },
  ),
  rule(
    "passthrough.unknown-ids",
    "a device is bound only when its vendor:device is known (the bind script re-checks it)",
    each(({ path, dev, host }, emit) => {
      if (host && (!dev.vendorId || !dev.deviceId))
        emit.error(
          path,
          `${dev.address} has no readable vendor:device id: the boot-time bind cannot re-check it`,
        );
    }),
  ),
];
