// The live "bridge takes over the uplink" sequence, as argv lists for the apply stage (no shell). The
// bridge is created down with the port's MAC, so it never shows a generated MAC on the wire (a DHCP
// server would hand it a new lease, systemd#12558); the port's addresses move to the bridge; then the
// bridge comes up and the routes return. Run it under the confirm-or-revert timer. A DHCP bridge has no
// addresses here: the network stack's client takes over on br0 (same MAC, so the same lease).
import { isV6 } from "./net-common.js";
import type { NetBridge } from "./types.js";

const IFNAME = /^[a-zA-Z0-9_.-]{1,15}$/;
const MAC = /^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/;

export function bridgeTakeoverCommands(bridge: NetBridge, port: { name: string; mac: string }): string[][] {
  if (!IFNAME.test(bridge.name) || !IFNAME.test(port.name))
    throw new Error("bridge takeover: bad interface name");
  if (!MAC.test(port.mac)) throw new Error(`bridge takeover: bad MAC ${port.mac}`);
  const br = bridge.name;
  const cmds: string[][] = [
    [
      "ip",
      "link",
      "add",
      "name",
      br,
      "type",
      "bridge",
      "stp_state",
      bridge.stp ? "1" : "0",
      "forward_delay",
      "0",
    ],
    ["ip", "link", "set", "dev", br, "address", port.mac.toLowerCase()],
  ];
  // Off is the kernel default; only ask for filtering when wanted (kernels without
  // CONFIG_BRIDGE_VLAN_FILTERING refuse the attribute even when it is 0).
  if (bridge.vlanAware) cmds.push(["ip", "link", "set", "dev", br, "type", "bridge", "vlan_filtering", "1"]);
  if (bridge.mtu !== undefined) {
    cmds.push(["ip", "link", "set", "dev", port.name, "mtu", String(bridge.mtu)]);
    cmds.push(["ip", "link", "set", "dev", br, "mtu", String(bridge.mtu)]);
  }
  cmds.push(
    ["ip", "link", "set", "dev", port.name, "master", br],
    ["ip", "address", "flush", "dev", port.name, "scope", "global"],
  );
  for (const a of bridge.addresses) cmds.push(["ip", "address", "add", a, "dev", br]);
  cmds.push(["ip", "link", "set", "dev", port.name, "up"], ["ip", "link", "set", "dev", br, "up"]);
  const family = (addr: string) => (isV6(addr) ? ["-6"] : ["-4"]);
  if (bridge.gateway) {
    cmds.push([
      "ip",
      ...family(bridge.gateway),
      "route",
      "replace",
      "default",
      "via",
      bridge.gateway,
      "dev",
      br,
    ]);
  }
  for (const r of bridge.routes ?? []) {
    const metric = r.metric !== undefined ? ["metric", String(r.metric)] : [];
    cmds.push(["ip", ...family(r.via), "route", "replace", r.to, "via", r.via, "dev", br, ...metric]);
  }
  return cmds;
}
