// Remote consoles (consoles: in the answer): a VNC or SPICE port is a keyboard and a screen on every
// VM, so it listens on the management address only, never on a wildcard, and never in clear on a
// network. The management address is the one the answer gives the interface that carries the
// default route (a gateway, or a bridge on the uplink NIC); when the answer gives it none (DHCP, or
// the host's network kept as it is), it is an address the host report reads on its management NICs.
import type { HostReport } from "../../detect/types.js";
import type { Answer } from "../schema.js";
import { type Rule, rule } from "./types.js";

const WILDCARD = /^(0+\.0+\.0+\.0+|[0:]*::?[0:]*)$/;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1)$/;

/** Static addresses (without prefix) of the interfaces that carry the default route in the answer. */
export function managementAddressesOf(answer: Answer): string[] {
  const net = answer.network;
  if (!net) return [];
  const ifaces = [
    ...net.bridges.map((b) => ({ ...b, mgmt: b.gateway !== undefined || b.uplink?.uplink === true })),
    ...net.bonds.map((b) => ({ ...b, mgmt: b.gateway !== undefined || b.interfaces.some((i) => i.uplink) })),
    ...net.vlans.map((v) => ({ ...v, mgmt: v.gateway !== undefined })),
  ];
  return ifaces.flatMap((i) =>
    i.mgmt && Array.isArray(i.addresses) ? i.addresses.map((a) => a.split("/")[0] ?? a) : [],
  );
}

/**
 * The addresses the report reads on the interfaces carrying the default route (a bridge and its ports
 * alike), or null when the report cannot say (addresses or the route table not read).
 */
export function reportManagementAddresses(report: HostReport): { nic: string; address: string }[] | null {
  const mgmt = report.nics.filter((n) => n.management && n.name !== null);
  if (!mgmt.length || mgmt.some((n) => !Array.isArray(n.addresses))) return null;
  return mgmt.flatMap((n) =>
    Array.isArray(n.addresses) ? n.addresses.map((a) => ({ nic: n.name ?? "", address: a.address })) : [],
  );
}

/** Where the listen address is on the host, by the report: the NIC holding it, or null. */
const holderOf = (report: HostReport, address: string) =>
  report.nics.find((n) => Array.isArray(n.addresses) && n.addresses.some((a) => a.address === address))
    ?.name ?? null;

export const consoleRules: Rule[] = [
  rule(
    "consoles.wildcard",
    "VNC and SPICE never listen on 0.0.0.0 or :: (every network, and without TLS, in clear)",
    ({ answer }, emit) => {
      const c = answer.consoles;
      if (!c || !WILDCARD.test(c.listen)) return;
      emit.error(
        "consoles.listen",
        `${c.listen} listens on every address of the host${c.tls ? "" : ", without TLS"}: consoles listen on the management address only`,
        "give the host's management address (the address of the interface with the default route)",
      );
    },
  ),
  rule(
    "consoles.tls",
    "a console reached over a network uses TLS; without it only on loopback (through an SSH tunnel)",
    ({ answer }, emit) => {
      const c = answer.consoles;
      if (!c || c.tls || WILDCARD.test(c.listen)) return;
      if (LOOPBACK.test(c.listen))
        emit.warning(
          "consoles.tls",
          "consoles without TLS: reachable only through an SSH tunnel to the host",
        );
      else
        emit.error(
          "consoles.tls",
          `a console on ${c.listen} without TLS sends its screen and keystrokes in clear`,
          "set consoles.tls: true (kvmstrap pki makes the certificates), or listen on 127.0.0.1",
        );
    },
  ),
  rule(
    "consoles.management",
    "consoles listen on the host's management address (or loopback)",
    ({ answer, report }, emit) => {
      const c = answer.consoles;
      if (!c || WILDCARD.test(c.listen) || LOOPBACK.test(c.listen)) return;
      // The answer's static address wins: it is what the host has once the plan is applied.
      const mgmt = managementAddressesOf(answer);
      if (mgmt.length) {
        if (!mgmt.includes(c.listen))
          emit.error(
            "consoles.listen",
            `${c.listen} is not the management address (${mgmt.join(", ")})`,
            `listen on ${mgmt[0]}`,
          );
        return;
      }
      const held = reportManagementAddresses(report);
      if (held === null) {
        emit.warning(
          "consoles.listen",
          `${c.listen} cannot be confirmed as the management address: the answer gives no static address to the interface with the default route, and the host report has no addresses for it`,
        );
        return;
      }
      if (held.some((h) => h.address === c.listen)) return;
      const holder = holderOf(report, c.listen);
      const have = held.length
        ? held.map((h) => `${h.nic} ${h.address}`).join(", ")
        : "none: the interface with the default route has no address";
      emit.error(
        "consoles.listen",
        holder === null
          ? `${c.listen} is not an address of this host (management addresses: ${have})`
          : `${c.listen} is on ${holder}, which does not carry the default route (management addresses: ${have})`,
        held[0] ? `listen on ${held[0].address}` : null,
      );
    },
  ),
  rule("consoles.some", "a consoles section turns on VNC, SPICE or both", ({ answer }, emit) => {
    const c = answer.consoles;
    if (c && !c.vnc && !c.spice) emit.warning("consoles", "neither vnc nor spice is on: no console is added");
  }),
];
