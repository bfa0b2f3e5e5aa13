// Checks and lookups shared by the network renderers. Every renderer calls checkNetwork first, so no
// value with whitespace or a newline can reach a config file, and every reference names something
// defined in the same desired state (netplan and networkd both need that).
import { INTERFACE_NAME, MAC } from "../../core/grammar.js";
import type { Addressing, NetworkDesired } from "./types.js";

const TOKEN = /^[^\s"'\\;#,]+$/;

export type Master = { kind: "bridge" | "bond"; name: string };

function fail(msg: string): never {
  throw new Error(`network render: ${msg}`);
}

function checkAddressing(owner: string, a: Addressing): void {
  const tokens = [
    ...a.addresses,
    ...(a.gateway ? [a.gateway] : []),
    ...(a.dns?.servers ?? []),
    ...(a.dns?.search ?? []),
    ...(a.routes ?? []).flatMap((r) => [r.to, r.via]),
  ];
  for (const t of tokens) if (!TOKEN.test(t)) fail(`${owner}: invalid value ${JSON.stringify(t)}`);
  for (const addr of a.addresses)
    if (!addr.includes("/")) fail(`${owner}: address ${addr} needs a prefix length`);
  if (a.mtu !== undefined && !(Number.isInteger(a.mtu) && a.mtu >= 68 && a.mtu <= 65535))
    fail(`${owner}: bad mtu`);
}

/** Throws when names, MACs or values are malformed, or a reference points at nothing defined here. */
export function checkNetwork(n: NetworkDesired): void {
  const names = new Set<string>();
  const all = [...n.ports, ...n.bonds, ...n.bridges, ...n.vlans];
  for (const d of all) {
    if (!INTERFACE_NAME.test(d.name)) fail(`invalid interface name ${JSON.stringify(d.name)}`);
    if (names.has(d.name)) fail(`${d.name} is defined twice`);
    names.add(d.name);
  }
  for (const d of [...n.ports, ...n.bridges]) {
    if (d.mac !== undefined && !MAC.test(d.mac)) fail(`${d.name}: invalid MAC ${JSON.stringify(d.mac)}`);
  }
  const portNames = new Set(n.ports.map((p) => p.name));
  const bondNames = new Set(n.bonds.map((b) => b.name));
  for (const b of n.bonds) {
    for (const i of b.interfaces) if (!portNames.has(i)) fail(`bond ${b.name}: ${i} is not among the ports`);
    if (!/^[a-z0-9.-]+$/.test(b.mode)) fail(`bond ${b.name}: invalid mode ${JSON.stringify(b.mode)}`);
  }
  for (const br of n.bridges) {
    for (const p of br.ports) {
      if (!portNames.has(p) && !bondNames.has(p))
        fail(`bridge ${br.name}: ${p} is neither a port nor a bond`);
    }
  }
  const masters = mastersOf(n);
  for (const v of n.vlans) {
    if (!Number.isInteger(v.id) || v.id < 1 || v.id > 4094) fail(`vlan ${v.name}: id ${v.id} out of 1-4094`);
    if (!names.has(v.link) || n.vlans.some((o) => o.name === v.link)) {
      fail(`vlan ${v.name}: link ${v.link} is not a bridge, bond or port defined here`);
    }
  }
  for (const d of [...n.bonds, ...n.bridges, ...n.vlans]) {
    checkAddressing(d.name, d);
    if (masters.has(d.name) && (d.dhcp || d.addresses.length > 0)) {
      fail(`${d.name} is enslaved to ${masters.get(d.name)?.name} and cannot have addresses`);
    }
  }
}

/** Which bridge or bond each port (or bond) is enslaved to. */
export function mastersOf(n: NetworkDesired): Map<string, Master> {
  const m = new Map<string, Master>();
  const set = (port: string, master: Master) => {
    const prev = m.get(port);
    if (prev) fail(`${port} is enslaved to both ${prev.name} and ${master.name}`);
    m.set(port, master);
  };
  for (const b of n.bonds) for (const i of b.interfaces) set(i, { kind: "bond", name: b.name });
  for (const br of n.bridges) for (const p of br.ports) set(p, { kind: "bridge", name: br.name });
  return m;
}

/** An interface's MTU: its own, else its master's (a jumbo bridge needs jumbo ports, through a bond too). */
export function mtuOf(n: NetworkDesired, name: string, masters: Map<string, Master>): number | undefined {
  const own = [...n.bonds, ...n.bridges, ...n.vlans].find((d) => d.name === name)?.mtu;
  const master = masters.get(name);
  return own ?? (master ? mtuOf(n, master.name, masters) : undefined);
}

export const isV6 = (addr: string): boolean => addr.includes(":");
