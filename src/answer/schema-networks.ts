// The answer's virtual networks: libvirt NAT and isolated networks, Open vSwitch bridges, and the VM
// NICs that sit on them with a VLAN (an access port) or several (a trunk). Kept apart from schema.ts
// so that file stays readable; schema.ts places these under network: and vms[].nics. VLAN ids are
// plain integers here: the rule set (rules/virtual-networks.ts) says which are out of 1-4094, with
// the key path, next to the other network rules.
import { z } from "zod";
import { type Grammar, INTERFACE_NAME, MAC, OBJECT_NAME } from "../core/grammar.js";

const grammar = (g: Grammar) =>
  z.string().regex(g.pattern, { message: g.describe, abort: true }).refine(g.test, { message: g.describe });
const ifname = grammar(INTERFACE_NAME);
const mac = grammar(MAC);
const ipv4 = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, "an IPv4 address such as 192.168.100.1");

export const vlanIdInput = z.number().int().describe("an 802.1Q VLAN id, 1-4094");

/** A libvirt network for guests: NAT to the host's uplink, or isolated (guests and host only). */
export const libvirtNetwork = z.strictObject({
  name: grammar(OBJECT_NAME).describe("the libvirt network name VMs give as nics[].network"),
  mode: z.enum(["nat", "isolated"]).describe("nat: guests reach out through the host; isolated: they do not"),
  bridge: ifname.describe("the Linux bridge libvirt creates for it"),
  address: z
    .string()
    .regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "the host's address with prefix such as 192.168.100.1/24")
    .describe("the host's address on the network, with its prefix"),
  dhcpRange: z.tuple([ipv4, ipv4]).optional().describe("libvirt's dnsmasq hands out these addresses"),
  autostart: z.boolean().default(true),
});

/** An Open vSwitch bridge; VMs join it with an access port (vlan) or a trunk (trunk). */
export const ovsBridge = z.strictObject({
  name: ifname,
  datapath: z
    .enum(["auto", "system", "netdev"])
    .default("auto")
    .describe(
      "system: the openvswitch kernel module; netdev: user space (slower, no module needed); auto: system when detect finds the module",
    ),
  uplink: ifname
    .optional()
    .describe("the host interface added to the bridge as its uplink (a trunk of every VLAN)"),
});

/** A VM NIC on an Open vSwitch bridge: untagged on one VLAN, or a trunk of the VLANs listed. */
export const ovsNic = z.strictObject({
  ovs: ifname.describe("a bridge in network.ovs"),
  vlan: vlanIdInput.optional().describe("access port: the guest's frames are untagged, on this VLAN"),
  trunk: z
    .array(vlanIdInput)
    .min(1)
    .optional()
    .describe("trunk port: the guest tags its frames with these VLANs"),
  mac: mac.optional(),
});

export type LibvirtNetwork = z.infer<typeof libvirtNetwork>;
export type OvsBridge = z.infer<typeof ovsBridge>;
export type OvsNic = z.infer<typeof ovsNic>;
