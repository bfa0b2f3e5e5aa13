// One device, one job: a PCI function passed through (at boot or to a VM) leaves the host, so it
// cannot also be a bridge or bond port, a VLAN's link, an SR-IOV PF or a VM's macvtap NIC.
import { nicKey } from "./facts.js";
import { type Rule, rule } from "./types.js";

const roleOf = (path: string): string | null => {
  if (/^network\.bridges\[\d+\]\.uplink$/.test(path)) return "a bridge uplink";
  if (/^network\.bridges\[\d+\]\.ports/.test(path)) return "a bridge port";
  if (/^network\.bonds/.test(path)) return "a bond member";
  if (/^network\.vlans/.test(path)) return "a VLAN link";
  if (/^sriov\[\d+\]\.pf$/.test(path)) return "an SR-IOV PF";
  if (/\.macvtap$/.test(path)) return "a VM's macvtap NIC";
  return null;
};

export const roleRules: Rule[] = [
  rule(
    "roles.conflict",
    "a passed-through device is not also a bridge/bond port, VLAN link, SR-IOV PF or macvtap NIC",
    ({ facts }, emit) => {
      const uses = new Map<string, string[]>();
      for (const m of facts.matches) {
        if (m.kind !== "nic") continue;
        const nic = facts.nic(m.path);
        const role = roleOf(m.path);
        if (!nic?.pciAddress || !role) continue;
        const list = uses.get(nicKey(nic)) ?? [];
        list.push(`${role} (${m.path})`);
        uses.set(nicKey(nic), list);
      }
      for (const m of facts.matches) {
        if (m.kind !== "pci") continue;
        const dev = facts.pci(m.path);
        const other = dev ? uses.get(dev.address) : undefined;
        if (dev && other?.length)
          emit.error(
            m.path,
            `${dev.address} is passed through here but is also ${other.join(", ")}: a passed-through device leaves the host`,
            "give each device one job",
          );
      }
    },
  ),
];
