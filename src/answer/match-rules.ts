// Every match rule in an answer file, with its key path, so validate, plan and explain walk the same
// list: the network, sriov, passthrough and storage sections, and each VM's sriov and macvtap NICs
// and passthrough devices.
import type { Answer, DiskMatch, NicMatch, PciMatch } from "./schema.js";

export type MatchRule =
  | { kind: "nic"; path: string; rule: NicMatch }
  | { kind: "disk"; path: string; rule: DiskMatch }
  | { kind: "pci"; path: string; rule: PciMatch };

export function collectRules(answer: Answer): MatchRule[] {
  const out: MatchRule[] = [];
  const nic = (path: string, rule: NicMatch): void => {
    out.push({ kind: "nic", path, rule });
  };
  const net = answer.network;
  net?.bridges.forEach((b, i) => {
    if (b.uplink) nic(`network.bridges[${i}].uplink`, b.uplink);
    b.ports?.forEach((p, j) => {
      if (!("bond" in p)) nic(`network.bridges[${i}].ports[${j}]`, p);
    });
  });
  net?.bonds.forEach((b, i) => {
    for (const [j, m] of b.interfaces.entries()) nic(`network.bonds[${i}].interfaces[${j}]`, m);
  });
  net?.vlans.forEach((v, i) => {
    if (typeof v.link !== "string") nic(`network.vlans[${i}].link`, v.link);
  });
  for (const [i, s] of answer.sriov.entries()) nic(`sriov[${i}].pf`, s.pf);
  for (const [i, p] of answer.passthrough.entries()) {
    out.push({ kind: "pci", path: `passthrough[${i}].device`, rule: p.device });
  }
  answer.storage?.pools.forEach((p, i) => {
    for (const [j, d] of (p.disks ?? []).entries()) {
      out.push({ kind: "disk", path: `storage.pools[${i}].disks[${j}]`, rule: d });
    }
  });
  if (answer.install) out.push({ kind: "disk", path: "install.disk", rule: answer.install.disk });
  answer.vms.forEach((vm, i) => {
    vm.nics.forEach((n, j) => {
      if ("sriov" in n) nic(`vms[${i}].nics[${j}].sriov`, n.sriov);
      if ("macvtap" in n) nic(`vms[${i}].nics[${j}].macvtap`, n.macvtap);
    });
    for (const [j, p] of (vm.passthrough ?? []).entries()) {
      out.push({ kind: "pci", path: `vms[${i}].passthrough[${j}]`, rule: p });
    }
  });
  return out;
}
