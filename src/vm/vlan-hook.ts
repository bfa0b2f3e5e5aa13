// A VM's VLAN on a VLAN-aware Linux bridge, kept by libvirt's qemu hook. libvirt (9.0) sets no VLAN
// on a Linux bridge port, and one set on the tap by hand is gone when the VM restarts or migrates: so
// the VLAN lives in the domain's kvmstrap metadata (<kvmstrap:port mac vlan>, src/vm/domain-xml.ts)
// and libvirtd hands the hook the domain XML each time it starts the VM. Pure: the decisions (which
// `bridge vlan` commands for which tap, or why the start must be refused); src/app/libvirt-hook.ts
// reads stdin and sysfs and runs them.
//
// The operation acted on is "start begin": libvirt calls it after it made the taps and put them on
// their bridges, before qemu runs, and a failing hook aborts the start. An incoming migration starts
// its qemu the same way, so the destination's port gets its VLAN before the guest sends a frame there.
// A refusal is the safe side: a VM must never run on an untagged port it was meant to be isolated from.
import { attribute, child, children, parseWellFormedXmlTree, type XmlNode } from "../core/xml-tree.js";
import { KVMSTRAP_XMLNS } from "./domain-xml.js";

/** What sysfs says of a bridge: vlan_filtering absent (the kernel has none), 0 or 1; default_pvid. */
export type BridgeFacts = { filtering: "absent" | "off" | "on"; defaultPvid: number } | { missing: true };

/** One tagged NIC of the domain as it is about to run. */
export type TaggedPort = { mac: string; vlan: number; tap: string | null; bridge: string | null };

export type HookDecision =
  | { kind: "nothing"; why: string }
  | { kind: "run"; commands: string[][]; notes: string[] }
  | { kind: "refuse"; reason: string };

/** A non-empty attribute, or null. */
const attr = (n: XmlNode | undefined, key: string): string | null => attribute(n, key) || null;

/** The kvmstrap ports of the metadata, whatever prefix libvirt keeps for the namespace. */
function metadataPorts(metadata: XmlNode | undefined): { mac: string; vlan: number }[] {
  for (const key of Object.keys(metadata ?? {})) {
    const prefix = key.startsWith("@") || !key.includes(":") ? null : key.slice(0, key.indexOf(":"));
    const el = child(metadata, key);
    if (!prefix || attribute(el, `xmlns:${prefix}`) !== KVMSTRAP_XMLNS) continue;
    return children(el, `${prefix}:port`).flatMap((p) => {
      const mac = attr(p, "mac")?.toLowerCase();
      const vlan = Number(attribute(p, "vlan") ?? Number.NaN);
      return mac && Number.isInteger(vlan) && vlan >= 1 && vlan <= 4094 ? [{ mac, vlan }] : [];
    });
  }
  return [];
}

/** The domain's tagged NICs, each matched by MAC with its live tap and bridge. Throws on bad XML. */
export function taggedPorts(domainXml: string): TaggedPort[] {
  const domain = child(parseWellFormedXmlTree(domainXml), "domain");
  const ports = metadataPorts(child(domain, "metadata"));
  const ifaces = children(child(domain, "devices"), "interface");
  return ports.map(({ mac, vlan }) => {
    const iface = ifaces.find((i) => attr(child(i, "mac"), "address")?.toLowerCase() === mac);
    const ovs = attribute(child(iface, "virtualport"), "type") === "openvswitch";
    return {
      mac,
      vlan,
      tap: iface ? attr(child(iface, "target"), "dev") : null,
      bridge: iface && !ovs ? attr(child(iface, "source"), "bridge") : null,
    };
  });
}

/**
 * The decision for one hook call: args are libvirt's (DOMAIN OPERATION SUBOP EXTRA), ports the domain's
 * tagged NICs, facts what sysfs says of each bridge they sit on.
 */
export function decideVlanHook(
  args: readonly string[],
  ports: readonly TaggedPort[],
  facts: ReadonlyMap<string, BridgeFacts>,
): HookDecision {
  const [domain = "?", op, subop] = args;
  if (op !== "start" || subop !== "begin") return { kind: "nothing", why: `${op ?? "?"} ${subop ?? "?"}` };
  if (!ports.length) return { kind: "nothing", why: "no VLAN on a Linux bridge" };
  const commands: string[][] = [];
  const notes: string[] = [];
  for (const p of ports) {
    const what = `VM ${domain}: the NIC ${p.mac} is meant for VLAN ${p.vlan}`;
    if (!p.bridge) return { kind: "refuse", reason: `${what}, but it is not on a Linux bridge` };
    if (!p.tap) return { kind: "refuse", reason: `${what}, but libvirt names no tap for it` };
    const f = facts.get(p.bridge) ?? { missing: true };
    if ("missing" in f) return { kind: "refuse", reason: `${what}, but bridge ${p.bridge} does not exist` };
    if (f.filtering === "absent")
      return {
        kind: "refuse",
        reason: `${what} on bridge ${p.bridge}, but this kernel has no bridge VLAN filtering: the VM would run untagged, not isolated`,
      };
    if (f.filtering === "off")
      return {
        kind: "refuse",
        reason: `${what} on bridge ${p.bridge}, but the bridge has VLAN filtering off (vlan_filtering 0): the VM would not be isolated`,
      };
    // The kernel puts a new port on the bridge's default VLAN (untagged, pvid): take it off unless it
    // is this one, so the port carries only its own VLAN.
    if (f.defaultPvid !== 0 && f.defaultPvid !== p.vlan)
      commands.push(["bridge", "vlan", "del", "dev", p.tap, "vid", String(f.defaultPvid)]);
    commands.push(["bridge", "vlan", "add", "dev", p.tap, "vid", String(p.vlan), "pvid", "untagged"]);
    notes.push(`${p.tap} on ${p.bridge}: VLAN ${p.vlan} untagged (pvid)`);
  }
  return { kind: "run", commands, notes };
}
