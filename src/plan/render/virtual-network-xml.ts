// libvirt network XML for the answer's network.libvirt entries: NAT (forward mode nat) or isolated
// (no forward element: guests and host only), a bridge, the host's address and an optional DHCP range.
import type { LibvirtNetwork } from "../../answer/schema-networks.js";
import { xmlEscape as e } from "./libvirt-xml.js";

export function renderLibvirtNetworkXml(n: LibvirtNetwork, uuid?: string): string {
  const [address = "", prefix = ""] = n.address.split("/");
  return `${[
    "<network>",
    `  <name>${e(n.name)}</name>`,
    ...(uuid ? [`  <uuid>${e(uuid)}</uuid>`] : []),
    ...(n.mode === "nat" ? ['  <forward mode="nat"/>'] : []),
    `  <bridge name="${e(n.bridge)}" stp="on" delay="0"/>`,
    `  <ip address="${e(address)}" prefix="${e(prefix)}">`,
    ...(n.dhcpRange
      ? [
          "    <dhcp>",
          `      <range start="${e(n.dhcpRange[0])}" end="${e(n.dhcpRange[1])}"/>`,
          "    </dhcp>",
        ]
      : []),
    "  </ip>",
    "</network>",
  ].join("\n")}\n`;
}
