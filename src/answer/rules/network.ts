// Network consistency: every NIC rule picks a NIC with an interface, no NIC is claimed twice, names
// are unique across bridges, bonds and VLANs, references resolve, the management NIC joins no bond
// (its address would move under the operator's session), and the host's network stack is known.
import { nicLabel } from "../match.js";
import { nicKey } from "./facts.js";
import { type Rule, rule } from "./types.js";

export const networkRules: Rule[] = [
  rule("network.duplicate-name", "bridge, bond and VLAN names are unique", ({ answer }, emit) => {
    const net = answer.network;
    if (!net) return;
    const names = new Map<string, string>();
    const declare = (name: string, path: string) => {
      const prior = names.get(name);
      if (prior) emit.error(`${path}.name`, `duplicate interface name "${name}" (also ${prior})`);
      else names.set(name, path);
    };
    for (const [i, b] of net.bridges.entries()) declare(b.name, `network.bridges[${i}]`);
    for (const [i, b] of net.bonds.entries()) declare(b.name, `network.bonds[${i}]`);
    for (const [i, v] of net.vlans.entries()) declare(v.name, `network.vlans[${i}]`);
  }),
  rule("network.claimed-twice", "a NIC is a port of one bridge or bond only", ({ facts }, emit) => {
    const claims = new Map<string, string>();
    for (const m of facts.matches) {
      if (m.kind !== "nic" || !/^network\.(bridges|bonds)\[/.test(m.path)) continue;
      const nic = facts.nic(m.path);
      if (!nic) continue;
      const prior = claims.get(nicKey(nic));
      if (prior) emit.error(m.path, `${nicLabel(nic)} is already claimed by ${prior}`);
      else claims.set(nicKey(nic), m.path);
    }
  }),
  rule("network.no-interface", "a NIC in a bridge, bond or VLAN has an interface name", ({ facts }, emit) => {
    for (const m of facts.matches) {
      if (m.kind !== "nic" || !m.path.startsWith("network.")) continue;
      const nic = facts.nic(m.path);
      if (nic && !nic.name) emit.error(m.path, `${nicLabel(nic)} has no network interface`);
    }
  }),
  rule("network.bond-undefined", "a bridge port naming a bond names one defined here", ({ answer }, emit) => {
    const net = answer.network;
    if (!net) return;
    const bonds = new Set(net.bonds.map((b) => b.name));
    net.bridges.forEach((b, i) => {
      b.ports?.forEach((p, j) => {
        if ("bond" in p && !bonds.has(p.bond))
          emit.error(`network.bridges[${i}].ports[${j}].bond`, `no bond named "${p.bond}" in network.bonds`);
      });
    });
  }),
  rule(
    "network.vlan-link",
    "a VLAN's link is a bridge or bond defined here, or a NIC rule",
    ({ answer }, emit) => {
      const net = answer.network;
      if (!net) return;
      const defined = [...net.bridges, ...net.bonds].map((x) => x.name);
      net.vlans.forEach((v, i) => {
        if (typeof v.link !== "string" || defined.includes(v.link)) return;
        emit.error(
          `network.vlans[${i}].link`,
          `"${v.link}" is not a bridge or bond defined in this file${defined.length ? ` (defined: ${defined.join(", ")})` : ""}; to put the VLAN on a NIC, give a match rule`,
        );
      });
    },
  ),
  rule(
    "network.bond-management",
    "the management NIC joins no bond: its address would move under the operator's session",
    ({ answer, facts }, emit) => {
      answer.network?.bonds.forEach((b, i) => {
        b.interfaces.forEach((_, j) => {
          const path = `network.bonds[${i}].interfaces[${j}]`;
          const nic = facts.nic(path);
          if (nic?.management)
            emit.error(
              path,
              `${nicLabel(nic)} is the management NIC (it carries the default route): bonding it moves the address this session uses`,
              "make it the bridge's uplink instead, or build the bond from the console",
            );
        });
      });
    },
  ),
  rule(
    "network.stack-unknown",
    "bridges, bonds and VLANs need a network stack that reloads them",
    ({ answer, report }, emit) => {
      const net = answer.network;
      if (!net || net.bridges.length + net.bonds.length + net.vlans.length === 0) return;
      const stack = net.stack === "auto" ? report.system.networkStack : net.stack;
      if (stack === "ifupdown")
        emit.error(
          "network.stack",
          "classic ifupdown cannot reload bridges safely: install ifupdown2 or set network.stack",
        );
      else if (stack === "unknown")
        emit.error(
          "network.stack",
          "no network stack recognised on the host (netplan, ifupdown2, systemd-networkd, NetworkManager): set network.stack",
        );
    },
  ),
];
