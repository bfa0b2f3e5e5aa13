// /etc/network/interfaces.d/kvmstrap for ifupdown2 (Proxmox VE's stack). Ports are "inet manual";
// the bridge takes the uplink's MAC with hwaddress so DHCP keeps the same lease (systemd#12558).
import { checkNetwork, isV6, mastersOf, mtuOf } from "./net-common.js";
import type { Addressing, NetworkDesired } from "./types.js";

export const IFUPDOWN2_PATH = "/etc/network/interfaces.d/kvmstrap";

function stanza(name: string, method: "dhcp" | "static" | "manual", lines: string[]): string {
  const body = lines.map((l) => `    ${l}\n`).join("");
  return `auto ${name}\niface ${name} inet ${method}\n${body}`;
}

function method(a: Addressing): "dhcp" | "static" | "manual" {
  if (a.dhcp) return "dhcp";
  return a.addresses.length ? "static" : "manual";
}

function addressing(name: string, a: Addressing): string[] {
  const out = a.addresses.map((addr) => `address ${addr}`);
  if (a.gateway) out.push(`gateway ${a.gateway}`);
  if (a.dns?.servers.length) out.push(`dns-nameservers ${a.dns.servers.join(" ")}`);
  if (a.dns?.search.length) out.push(`dns-search ${a.dns.search.join(" ")}`);
  for (const r of a.routes ?? []) {
    const ip = isV6(r.via) ? "ip -6" : "ip";
    const metric = r.metric !== undefined ? ` metric ${r.metric}` : "";
    out.push(`post-up ${ip} route add ${r.to} via ${r.via}${metric} dev ${name}`);
    out.push(`pre-down ${ip} route del ${r.to} via ${r.via}${metric} dev ${name} || true`);
  }
  return out;
}

export function renderIfupdown2(n: NetworkDesired): string {
  checkNetwork(n);
  const masters = mastersOf(n);
  const out: string[] = ["# Managed by kvmstrap: edits are overwritten.\n"];
  // ifupdown2 warns (and `ifup -s` fails) on a bridge MTU: it goes on the ports, through a bond too.
  const mtu = (name: string) => {
    const m = mtuOf(n, name, masters);
    return m === undefined ? [] : [`mtu ${m}`];
  };
  for (const p of n.ports) out.push(stanza(p.name, "manual", mtu(p.name)));
  for (const b of n.bonds) {
    const lines = [`bond-slaves ${b.interfaces.join(" ")}`, `bond-mode ${b.mode}`, "bond-miimon 100"];
    out.push(
      stanza(b.name, masters.has(b.name) ? "manual" : method(b), [
        ...lines,
        ...mtu(b.name),
        ...addressing(b.name, b),
      ]),
    );
  }
  for (const br of n.bridges) {
    // bridge-vlan-aware is written only when it is wanted or needed: an explicit "no" makes
    // ifupdown2 set vlan_filtering 0, which a kernel without bridge VLAN filtering refuses
    // (EOPNOTSUPP) and the whole ifreload fails. A bridge without ports has no bridge-ports line
    // (Debian's `ifup -s` refuses "none"), so there the line is what marks the stanza as a bridge.
    const lines = [
      ...(br.ports.length ? [`bridge-ports ${br.ports.join(" ")}`] : []),
      `bridge-stp ${br.stp ? "on" : "off"}`,
      "bridge-fd 0",
      ...(br.vlanAware ? ["bridge-vlan-aware yes"] : br.ports.length ? [] : ["bridge-vlan-aware no"]),
    ];
    if (br.mac) lines.push(`hwaddress ether ${br.mac.toLowerCase()}`);
    out.push(stanza(br.name, method(br), [...lines, ...addressing(br.name, br)]));
  }
  for (const v of n.vlans) {
    const lines = [`vlan-raw-device ${v.link}`, `vlan-id ${v.id}`];
    out.push(stanza(v.name, method(v), [...lines, ...mtu(v.name), ...addressing(v.name, v)]));
  }
  return out.join("\n");
}
