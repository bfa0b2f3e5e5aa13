// systemd-networkd files under /etc/systemd/network: a .netdev per bridge/bond/vlan and a .network per
// interface. Ports are matched by Name= only: a bridge, bond or VLAN shares its port's MAC, so a
// MACAddress= match would also catch them. The bridge's MACAddress= keeps the uplink's DHCP lease.
import { checkNetwork, mastersOf, mtuOf } from "./net-common.js";
import type { Addressing, NetworkDesired, RenderedFile } from "./types.js";

export const NETWORKD_DIR = "/etc/systemd/network";

type Section = [string, [string, string | number][]];

function ini(sections: Section[]): string {
  const body = sections.map(([name, keys]) => `[${name}]\n${keys.map(([k, v]) => `${k}=${v}\n`).join("")}`);
  return `# Managed by kvmstrap: edits are overwritten.\n${body.join("\n")}`;
}

const yesNo = (b: boolean) => (b ? "yes" : "no");

/** networkd applies the first .network file, by name, that matches a link: ours sort by this name. */
export function networkdFileName(name: string, ext: "netdev" | "network"): string {
  return `60-kvmstrap-${name}.${ext}`;
}

function file(name: string, ext: "netdev" | "network", sections: Section[]): RenderedFile {
  return { path: `${NETWORKD_DIR}/${networkdFileName(name, ext)}`, content: ini(sections), mode: 0o644 };
}

function networkSections(
  a: Addressing | undefined,
  extra: [string, string | number][],
  mtu: number | undefined,
): Section[] {
  const net: [string, string | number][] = [];
  if (!a) {
    net.push(["LinkLocalAddressing", "no"], ["IPv6AcceptRA", "no"]);
  } else {
    net.push(["DHCP", a.dhcp ? "ipv4" : "no"]);
    if (!a.dhcp && a.addresses.length === 0) net.push(["LinkLocalAddressing", "no"], ["IPv6AcceptRA", "no"]);
    for (const addr of a.addresses) net.push(["Address", addr]);
    if (a.gateway) net.push(["Gateway", a.gateway]);
    for (const s of a.dns?.servers ?? []) net.push(["DNS", s]);
    if (a.dns?.search.length) net.push(["Domains", a.dns.search.join(" ")]);
  }
  net.push(...extra);
  const sections: Section[] = [["Network", net]];
  if (mtu !== undefined) sections.unshift(["Link", [["MTUBytes", mtu]]]);
  for (const r of a?.routes ?? []) {
    const keys: [string, string | number][] = [
      ["Destination", r.to],
      ["Gateway", r.via],
    ];
    if (r.metric !== undefined) keys.push(["Metric", r.metric]);
    sections.push(["Route", keys]);
  }
  return sections;
}

export function renderNetworkd(n: NetworkDesired): RenderedFile[] {
  checkNetwork(n);
  const masters = mastersOf(n);
  const files: RenderedFile[] = [];
  const network = (name: string, a: Addressing | undefined) => {
    const extra: [string, string][] = [];
    const master = masters.get(name);
    if (master) extra.push([master.kind === "bridge" ? "Bridge" : "Bond", master.name]);
    for (const v of n.vlans) if (v.link === name) extra.push(["VLAN", v.name]);
    files.push(
      file(name, "network", [
        ["Match", [["Name", name]]],
        ...networkSections(a, extra, mtuOf(n, name, masters)),
      ]),
    );
  };
  for (const br of n.bridges) {
    const netdev: [string, string][] = [
      ["Name", br.name],
      ["Kind", "bridge"],
    ];
    if (br.mac) netdev.push(["MACAddress", br.mac.toLowerCase()]);
    const bridge: [string, string | number][] = [
      ["STP", yesNo(br.stp)],
      ["ForwardDelaySec", 0],
      ["VLANFiltering", yesNo(br.vlanAware)],
    ];
    files.push(
      file(br.name, "netdev", [
        ["NetDev", netdev],
        ["Bridge", bridge],
      ]),
    );
    network(br.name, br);
  }
  for (const b of n.bonds) {
    files.push(
      file(b.name, "netdev", [
        [
          "NetDev",
          [
            ["Name", b.name],
            ["Kind", "bond"],
          ],
        ],
        [
          "Bond",
          [
            ["Mode", b.mode],
            ["MIIMonitorSec", "100ms"],
          ],
        ],
      ]),
    );
    network(b.name, masters.has(b.name) ? undefined : b);
  }
  for (const v of n.vlans) {
    files.push(
      file(v.name, "netdev", [
        [
          "NetDev",
          [
            ["Name", v.name],
            ["Kind", "vlan"],
          ],
        ],
        ["VLAN", [["Id", v.id]]],
      ]),
    );
    network(v.name, v);
  }
  for (const p of n.ports) network(p.name, undefined);
  return files;
}
