// /etc/netplan/60-kvmstrap.yaml for netplan's networkd renderer. The bridge gets the uplink's MAC
// (`macaddress:`), so a DHCP server sees the same client and hands out the same lease
// (systemd#12558: a bridge otherwise gets a generated MAC and a new address).
import { Scalar, stringify } from "yaml";
import { checkNetwork, mastersOf, mtuOf } from "./net-common.js";
import type { Addressing, NetworkDesired } from "./types.js";

export const NETPLAN_PATH = "/etc/netplan/60-kvmstrap.yaml";
/** netplan warns about (and newer versions refuse) world-readable files. */
export const NETPLAN_MODE = 0o600;

/** MACs always double-quoted: YAML 1.1 reads an all-digit one such as 52:54:00:12:34:56 as a number. */
function quoted(value: string): Scalar {
  const s = new Scalar(value.toLowerCase());
  s.type = Scalar.QUOTE_DOUBLE;
  return s;
}

function addressing(a: Addressing): Record<string, unknown> {
  const out: Record<string, unknown> = { dhcp4: a.dhcp };
  if (a.addresses.length) out.addresses = a.addresses;
  const routes: Record<string, unknown>[] = [];
  if (a.gateway) routes.push({ to: "default", via: a.gateway });
  for (const r of a.routes ?? [])
    routes.push({ to: r.to, via: r.via, ...(r.metric !== undefined && { metric: r.metric }) });
  if (routes.length) out.routes = routes;
  if (a.dns && (a.dns.servers.length || a.dns.search.length)) {
    out.nameservers = {
      ...(a.dns.servers.length && { addresses: a.dns.servers }),
      ...(a.dns.search.length && { search: a.dns.search }),
    };
  }
  if (a.mtu !== undefined) out.mtu = a.mtu;
  return out;
}

export function renderNetplan(n: NetworkDesired): string {
  checkNetwork(n);
  const network: Record<string, unknown> = { version: 2, renderer: "networkd" };
  const masters = mastersOf(n);
  if (n.ports.length) {
    network.ethernets = Object.fromEntries(
      n.ports.map((p) => {
        const mtu = mtuOf(n, p.name, masters);
        return [p.name, { dhcp4: false, dhcp6: false, ...(mtu !== undefined && { mtu }) }];
      }),
    );
  }
  if (n.bonds.length) {
    network.bonds = Object.fromEntries(
      n.bonds.map((b) => [
        b.name,
        { interfaces: b.interfaces, parameters: { mode: b.mode }, ...addressing(b) },
      ]),
    );
  }
  if (n.bridges.length) {
    // netplan 0.106 has no bridge VLAN filtering key: vlanAware is left to the other stacks.
    network.bridges = Object.fromEntries(
      n.bridges.map((br) => [
        br.name,
        {
          interfaces: br.ports,
          ...(br.mac && { macaddress: quoted(br.mac) }),
          parameters: { stp: br.stp, "forward-delay": 0 },
          ...addressing(br),
        },
      ]),
    );
  }
  if (n.vlans.length) {
    network.vlans = Object.fromEntries(
      n.vlans.map((v) => [v.name, { id: v.id, link: v.link, ...addressing(v) }]),
    );
  }
  return `# Managed by kvmstrap: edits are overwritten.\n${stringify({ network }, { lineWidth: 0, version: "1.1" })}`;
}
