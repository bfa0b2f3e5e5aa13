// Names that become file names, directories or kernel objects hold to the shared grammars: bridge,
// bond and VLAN names, pool names, VM names, libvirt network names, and the hostdev network name of
// each SR-IOV PF (given, or derived from the PF's interface name). The schema already refuses a bad
// name in a file; this rule covers answers built in code (the TUI's draft) and derived names.
import { type Grammar, INTERFACE_NAME, OBJECT_NAME, VM_NAME } from "../../core/grammar.js";
import { nicLabel } from "../match.js";
import { type Rule, rule } from "./types.js";

/** The libvirt hostdev network for a PF's VFs: the entry's hostdevNetwork, else `${pfName}-vfs`. */
export function hostdevNetworkName(entry: { hostdevNetwork?: string | undefined }, pfName: string): string {
  return entry.hostdevNetwork ?? `${pfName}-vfs`;
}

export const nameRules: Rule[] = [
  rule(
    "names.grammar",
    "names used in paths hold no '/' and no '..' (a strict grammar)",
    ({ answer, facts }, emit) => {
      const check = (value: string, g: Grammar, path: string, what: string) => {
        if (!g.test(value)) emit.error(path, `${what} ${JSON.stringify(value)} is not ${g.describe}`);
      };
      const net = answer.network;
      for (const [i, b] of (net?.bridges ?? []).entries())
        check(b.name, INTERFACE_NAME, `network.bridges[${i}].name`, "bridge name");
      for (const [i, b] of (net?.bonds ?? []).entries())
        check(b.name, INTERFACE_NAME, `network.bonds[${i}].name`, "bond name");
      for (const [i, v] of (net?.vlans ?? []).entries())
        check(v.name, INTERFACE_NAME, `network.vlans[${i}].name`, "VLAN name");
      if (net?.libvirtNat) check(net.libvirtNat.name, OBJECT_NAME, "network.libvirtNat.name", "network name");
      for (const [i, p] of (answer.storage?.pools ?? []).entries())
        check(p.name, OBJECT_NAME, `storage.pools[${i}].name`, "pool name");
      answer.vms.forEach((vm, i) => {
        check(vm.name, VM_NAME, `vms[${i}].name`, "VM name");
        vm.nics.forEach((n, j) => {
          if ("network" in n) check(n.network, OBJECT_NAME, `vms[${i}].nics[${j}].network`, "network name");
        });
      });
      answer.sriov.forEach((s, i) => {
        if (s.hostdevNetwork !== undefined) {
          check(s.hostdevNetwork, OBJECT_NAME, `sriov[${i}].hostdevNetwork`, "hostdevNetwork name");
          return;
        }
        const pf = facts.nic(`sriov[${i}].pf`);
        if (pf?.name)
          check(
            hostdevNetworkName(s, nicLabel(pf)),
            OBJECT_NAME,
            `sriov[${i}].pf`,
            "the derived hostdev network name",
          );
      });
    },
  ),
];
