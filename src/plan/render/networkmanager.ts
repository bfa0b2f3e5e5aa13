// NetworkManager keyfiles (nm-settings-keyfile(5)), one profile per interface, named kvmstrap-<ifname>.
// Ports carry master=/slave-type= and no IP settings. The bridge takes the uplink's MAC through
// ethernet.cloned-mac-address so DHCP keeps the same lease (systemd#12558). Keyfiles must be 0600:
// NetworkManager ignores group- or world-readable ones.
import { createHash } from "node:crypto";
import { checkNetwork, isV6, mastersOf, mtuOf } from "./net-common.js";
import type { Addressing, NetworkDesired, RenderedFile } from "./types.js";

export const NM_DIR = "/etc/NetworkManager/system-connections";

type Keys = [string, string | number | boolean][];
type Section = [string, Keys];

/** A stable UUID (name-based, RFC 4122 version 5 layout) so a re-render does not create a new profile. */
export function nmUuid(id: string): string {
  const h = createHash("sha1").update(`kvmstrap:nm:${id}`).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString("hex");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function ip(family: 4 | 6, a: Addressing | undefined): Section {
  if (!a) return [`ipv${family}`, [["method", "disabled"]]];
  const addrs = a.addresses.filter((x) => isV6(x) === (family === 6));
  const keys: Keys = [];
  const dhcp = family === 4 ? a.dhcp : false;
  if (dhcp) keys.push(["method", "auto"]);
  else if (addrs.length) keys.push(["method", "manual"]);
  else keys.push(["method", family === 4 ? "disabled" : "ignore"]);
  addrs.forEach((addr, i) => {
    keys.push([`address${i + 1}`, addr]);
  });
  if (a.gateway && isV6(a.gateway) === (family === 6) && (addrs.length || dhcp))
    keys.push(["gateway", a.gateway]);
  const dns = (a.dns?.servers ?? []).filter((s) => isV6(s) === (family === 6));
  if (dns.length) keys.push(["dns", `${dns.join(";")};`]);
  if (family === 4 && a.dns?.search.length) keys.push(["dns-search", `${a.dns.search.join(";")};`]);
  (a.routes ?? [])
    .filter((r) => isV6(r.via) === (family === 6))
    .forEach((r, i) => {
      keys.push([`route${i + 1}`, [r.to, r.via, ...(r.metric !== undefined ? [r.metric] : [])].join(",")]);
    });
  return [`ipv${family}`, keys];
}

function keyfile(sections: Section[]): string {
  const body = sections
    .filter(([, keys]) => keys.length)
    .map(([name, keys]) => `[${name}]\n${keys.map(([k, v]) => `${k}=${v}\n`).join("")}`);
  return `# Managed by kvmstrap: edits are overwritten.\n${body.join("\n")}`;
}

export function renderNmKeyfiles(n: NetworkDesired): RenderedFile[] {
  checkNetwork(n);
  const masters = mastersOf(n);
  const profile = (
    name: string,
    type: string,
    specific: Section[],
    a: Addressing | undefined,
    mac?: string,
  ) => {
    const id = `kvmstrap-${name}`;
    const conn: Keys = [
      ["id", id],
      ["uuid", nmUuid(id)],
      ["type", type],
      ["interface-name", name],
      ["autoconnect", true],
    ];
    const master = masters.get(name);
    if (master) conn.push(["master", master.name], ["slave-type", master.kind]);
    // Activating a master brings its ports up, through a bond under a bridge too: the plan
    // activates only the top-level profiles, and the ports take their devices from old profiles.
    if (!master || type === "bond") conn.push(["autoconnect-slaves", 1]);
    const ethernet: Keys = [];
    const mtu = mtuOf(n, name, masters);
    if (mtu !== undefined) ethernet.push(["mtu", mtu]);
    if (mac) ethernet.push(["cloned-mac-address", mac.toLowerCase()]);
    const ipSections: Section[] = master ? [] : [ip(4, a), ip(6, a)];
    const content = keyfile([["connection", conn], ["ethernet", ethernet], ...specific, ...ipSections]);
    return { path: `${NM_DIR}/${id}.nmconnection`, content, mode: 0o600 };
  };
  return [
    ...n.bridges.map((br) => {
      const bridge: Keys = [
        // forward-delay must stay in 2-30 for NetworkManager; with STP off the kernel ignores it anyway.
        ["stp", br.stp],
        ["vlan-filtering", br.vlanAware],
      ];
      return profile(br.name, "bridge", [["bridge", bridge]], br, br.mac);
    }),
    ...n.bonds.map((b) =>
      profile(
        b.name,
        "bond",
        [
          [
            "bond",
            [
              ["mode", b.mode],
              ["miimon", 100],
            ],
          ],
        ],
        b,
      ),
    ),
    ...n.vlans.map((v) =>
      profile(
        v.name,
        "vlan",
        [
          [
            "vlan",
            [
              ["id", v.id],
              ["parent", v.link],
            ],
          ],
        ],
        v,
      ),
    ),
    ...n.ports.map((p) => profile(p.name, "ethernet", [], undefined)),
  ];
}
