// Network consistency: every NIC rule matches exactly one NIC, no NIC is claimed twice, names are
// unique across bridges, bonds and VLANs, and references (a vlan link, a bridge's bond port) resolve.
import type { HostReport } from "../detect/types.js";
import { matchNics, nicLabel } from "./match.js";
import type { Answer, NicMatch } from "./schema.js";
import type { ValidationResult } from "./validate.js";

export function validateNetwork(answer: Answer, report: HostReport, out: ValidationResult): void {
  const net = answer.network;
  if (!net) return;
  const names = new Map<string, string>();
  const declare = (name: string, path: string) => {
    const prior = names.get(name);
    if (prior)
      out.errors.push({
        path: `${path}.name`,
        message: `duplicate interface name "${name}" (also ${prior})`,
      });
    else names.set(name, path);
  };
  for (const [i, b] of net.bridges.entries()) declare(b.name, `network.bridges[${i}]`);
  for (const [i, b] of net.bonds.entries()) declare(b.name, `network.bonds[${i}]`);
  for (const [i, v] of net.vlans.entries()) declare(v.name, `network.vlans[${i}]`);

  const claims = new Map<string, string>();
  const claim = (rule: NicMatch, path: string) => {
    const m = matchNics(rule, report);
    const nic = m.chosen[0];
    if (m.error || !nic) {
      out.errors.push({ path, message: m.error ?? "no NIC" });
      return;
    }
    const key = nic.pciAddress ?? nicLabel(nic);
    const prior = claims.get(key);
    if (prior) out.errors.push({ path, message: `${nicLabel(nic)} is already claimed by ${prior}` });
    else claims.set(key, path);
  };
  const bonds = new Set(net.bonds.map((b) => b.name));
  net.bridges.forEach((b, i) => {
    const path = `network.bridges[${i}]`;
    if (b.uplink) claim(b.uplink, `${path}.uplink`);
    b.ports?.forEach((p, j) => {
      if (!("bond" in p)) claim(p, `${path}.ports[${j}]`);
      else if (!bonds.has(p.bond))
        out.errors.push({
          path: `${path}.ports[${j}].bond`,
          message: `no bond named "${p.bond}" in network.bonds`,
        });
    });
  });
  net.bonds.forEach((b, i) => {
    for (const [j, m] of b.interfaces.entries()) claim(m, `network.bonds[${i}].interfaces[${j}]`);
  });
  net.vlans.forEach((v, i) => {
    const path = `network.vlans[${i}].link`;
    if (typeof v.link !== "string") {
      const m = matchNics(v.link, report);
      if (m.error) out.errors.push({ path, message: m.error });
      return;
    }
    const kind = names.get(v.link);
    if (!kind || kind.startsWith("network.vlans")) {
      const defined = [...net.bridges, ...net.bonds].map((x) => x.name);
      out.errors.push({
        path,
        message: `"${v.link}" is not a bridge or bond defined in this file${defined.length ? ` (defined: ${defined.join(", ")})` : ""}; to put the VLAN on a NIC, give a match rule`,
      });
    }
  });
}
