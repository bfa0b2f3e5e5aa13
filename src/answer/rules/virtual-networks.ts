// Virtual networks: libvirt NAT and isolated networks, Open vSwitch bridges and the VLANs VMs take on
// them or on a VLAN-aware Linux bridge. Names unique across every interface the answer makes, VLAN ids
// 1-4094, a VM NIC's network or bridge defined, and what the kernel must offer (bridge VLAN
// filtering, the openvswitch module for the kernel datapath) taken from the detect report.
import type { Answer } from "../schema.js";
import { type Rule, rule } from "./types.js";

const nicsOf = (answer: Answer) =>
  answer.vms.flatMap((vm, i) => vm.nics.map((nic, j) => ({ nic, path: `vms[${i}].nics[${j}]` })));

const v4 = (s: string) => {
  const p = s.split(".").map(Number);
  return p.length === 4 && p.every((x) => Number.isInteger(x) && x >= 0 && x <= 255)
    ? p.reduce((a, x) => a * 256 + x, 0)
    : null;
};

export const virtualNetworkRules: Rule[] = [
  rule(
    "vnet.duplicate-name",
    "network names, and interface names across bridges, bonds, VLANs, libvirt networks and OVS, are unique",
    ({ answer }, emit) => {
      const net = answer.network;
      if (!net) return;
      const ifaces = new Map<string, string>();
      for (const [i, b] of net.bridges.entries()) ifaces.set(b.name, `network.bridges[${i}]`);
      for (const [i, b] of net.bonds.entries()) ifaces.set(b.name, `network.bonds[${i}]`);
      for (const [i, v] of net.vlans.entries()) ifaces.set(v.name, `network.vlans[${i}]`);
      if (net.libvirtNat) ifaces.set(net.libvirtNat.bridge, "network.libvirtNat");
      const declare = (name: string, path: string) => {
        const prior = ifaces.get(name);
        if (prior) emit.error(path, `interface name "${name}" is already used by ${prior}`);
        else ifaces.set(name, path.replace(/\.(name|bridge)$/, ""));
      };
      for (const [i, n] of (net.libvirt ?? []).entries()) declare(n.bridge, `network.libvirt[${i}].bridge`);
      for (const [i, b] of (net.ovs ?? []).entries()) declare(b.name, `network.ovs[${i}].name`);
      const networks = new Map<string, string>();
      if (net.libvirtNat) networks.set(net.libvirtNat.name, "network.libvirtNat");
      net.libvirt?.forEach((n, i) => {
        const prior = networks.get(n.name);
        if (prior) emit.error(`network.libvirt[${i}].name`, `libvirt network "${n.name}" is also ${prior}`);
        else networks.set(n.name, `network.libvirt[${i}]`);
      });
    },
  ),
  rule("vnet.vlan-id", "VLAN ids are 1-4094 (0 and 4095 are reserved by 802.1Q)", ({ answer }, emit) => {
    const check = (id: number, path: string) => {
      if (id < 1 || id > 4094) emit.error(path, `VLAN id ${id} is out of range: 1-4094`);
    };
    for (const { nic, path } of nicsOf(answer)) {
      if (("ovs" in nic || "bridge" in nic) && nic.vlan !== undefined) check(nic.vlan, `${path}.vlan`);
      if ("ovs" in nic) for (const [k, t] of (nic.trunk ?? []).entries()) check(t, `${path}.trunk[${k}]`);
    }
  }),
  rule(
    "vnet.ovs-port",
    "an OVS NIC is an access port (vlan) or a trunk (trunk), not both, on a bridge in network.ovs",
    ({ answer }, emit) => {
      const bridges = (answer.network?.ovs ?? []).map((b) => b.name);
      for (const { nic, path } of nicsOf(answer)) {
        if (!("ovs" in nic)) continue;
        // An answer that makes OVS bridges names only those (another name is a typo); one that makes
        // none (a `vm deploy` entry) may use a bridge the host has: libvirt refuses a missing one at start.
        if (!bridges.includes(nic.ovs) && bridges.length)
          emit.error(
            `${path}.ovs`,
            `no Open vSwitch bridge named "${nic.ovs}" in network.ovs (defined: ${bridges.join(", ")})`,
          );
        else if (!bridges.includes(nic.ovs))
          emit.warning(
            `${path}.ovs`,
            `Open vSwitch bridge ${nic.ovs} is not defined in network.ovs: it must exist on the host when the VM starts`,
          );
        if (nic.vlan !== undefined && nic.trunk)
          emit.error(path, "give vlan (an access port) or trunk (a trunk port), not both");
        const seen = new Set<number>();
        nic.trunk?.forEach((t, k) => {
          if (seen.has(t)) emit.error(`${path}.trunk[${k}]`, `VLAN ${t} is listed twice`);
          seen.add(t);
        });
      }
    },
  ),
  rule(
    "vnet.vm-network",
    "a VM's libvirt network is defined in this answer (or must already exist when it is deployed)",
    ({ answer }, emit) => {
      const net = answer.network;
      const defined = [
        ...(net?.libvirt ?? []).map((n) => n.name),
        ...(net?.libvirtNat ? [net.libvirtNat.name] : []),
      ];
      for (const { nic, path } of nicsOf(answer)) {
        if (!("network" in nic) || defined.includes(nic.network) || nic.network === "default") continue;
        emit.warning(
          `${path}.network`,
          `libvirt network "${nic.network}" is not defined in network.libvirt: it must exist on the host when the VM is deployed`,
        );
      }
    },
  ),
  rule(
    "vnet.bridge-vlan",
    "a VM's VLAN on a Linux bridge needs a VLAN-aware bridge of this answer and a kernel with bridge VLAN filtering",
    ({ answer, report }, emit) => {
      const filtering = report.vswitch?.bridgeVlanFiltering ?? null;
      const noFiltering =
        "this kernel has no bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING, kvmstrap detect)";
      const useOvs = "use an Open vSwitch bridge (network.ovs) for VLANs, or a kernel built with it";
      const net = answer.network;
      const stack = net ? (net.stack === "auto" ? report.system.networkStack : net.stack) : null;
      (net?.bridges ?? []).forEach((b, i) => {
        if (b.vlanAware && filtering === false)
          emit.error(`network.bridges[${i}].vlanAware`, noFiltering, useOvs);
        // netplan 0.106 has no key for it: the bridge would come up without filtering, and every
        // tagged VM's start would then be refused by the hook.
        else if (b.vlanAware && stack === "netplan")
          emit.error(
            `network.bridges[${i}].vlanAware`,
            "netplan cannot turn on bridge VLAN filtering (no such key in netplan 0.106)",
            "set network.stack to networkd or ifupdown2 if the host has it, or use an Open vSwitch bridge (network.ovs)",
          );
      });
      for (const { nic, path } of nicsOf(answer)) {
        if (!("bridge" in nic) || nic.vlan === undefined) continue;
        const bridge = answer.network?.bridges.find((b) => b.name === nic.bridge);
        if (!bridge?.vlanAware)
          emit.error(
            `${path}.vlan`,
            `bridge ${nic.bridge} is not a VLAN-aware bridge of this answer (network.bridges with vlanAware: true)`,
          );
        else if (filtering === false) emit.error(`${path}.vlan`, noFiltering, useOvs);
        // Detected, not assumed: the kvmstrap hook that sets the VLAN on the VM's port at each start
        // (src/vm/vlan-hook.ts) needs filtering, and refuses the start without it.
        else if (filtering === null)
          emit.error(
            `${path}.vlan`,
            "kvmstrap detect could not tell whether this kernel has bridge VLAN filtering",
            useOvs,
          );
      }
    },
  ),
  rule(
    "vnet.ovs-datapath",
    "the kernel datapath needs the openvswitch module; without it OVS runs in user space (datapath netdev)",
    ({ answer, report }, emit) => {
      const module = report.vswitch?.ovsModule ?? null;
      answer.network?.ovs?.forEach((b, i) => {
        if (b.datapath === "system" && module === false)
          emit.error(
            `network.ovs[${i}].datapath`,
            "this kernel has no openvswitch module (kvmstrap detect)",
            "set datapath: netdev (user space) or auto, or install a kernel with the module",
          );
      });
    },
  ),
  rule(
    "vnet.ovs-uplink",
    "an OVS uplink is a host interface, and never the management NIC (its address would be cut off)",
    ({ answer, report }, emit) => {
      answer.network?.ovs?.forEach((b, i) => {
        if (!b.uplink) return;
        const path = `network.ovs[${i}].uplink`;
        const nic = report.nics.find((n) => n.name === b.uplink);
        const claimed =
          answer.network?.bridges.some((x) => x.name === b.uplink) ||
          answer.network?.bonds.some((x) => x.name === b.uplink);
        if (!nic && !claimed)
          emit.error(path, `no interface ${b.uplink} on this host nor in network.bridges/bonds`);
        else if (nic?.management)
          emit.error(
            path,
            `${b.uplink} is the management NIC (it carries the default route): as an OVS port it loses the address this session uses`,
            "use another NIC as the uplink, or move the management address to the OVS bridge from the console",
          );
      });
    },
  ),
  rule(
    "vnet.subnet",
    "a libvirt network's DHCP range lies in its subnet and leaves out the host's address",
    ({ answer }, emit) => {
      answer.network?.libvirt?.forEach((n, i) => {
        const [addr = "", len = ""] = n.address.split("/");
        const host = v4(addr);
        const prefix = Number(len);
        if (host === null || prefix < 8 || prefix > 30) {
          emit.error(
            `network.libvirt[${i}].address`,
            `${n.address} is not an IPv4 address with a prefix of 8-30`,
          );
          return;
        }
        if (!n.dhcpRange) return;
        const mask = 2 ** 32 - 2 ** (32 - prefix);
        const net = (x: number) => Math.floor(x / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
        const [from, to] = n.dhcpRange.map(v4);
        if (from === null || to === null || from === undefined || to === undefined || from > to)
          emit.error(`network.libvirt[${i}].dhcpRange`, "not a range of two IPv4 addresses, lowest first");
        else if (net(from) !== net(host) || net(to) !== net(host) || mask === 0)
          emit.error(`network.libvirt[${i}].dhcpRange`, `${n.dhcpRange.join("-")} is outside ${n.address}`);
        else if (host >= from && host <= to)
          emit.error(
            `network.libvirt[${i}].dhcpRange`,
            `${n.dhcpRange.join("-")} includes the host's own address ${addr}`,
          );
      });
    },
  ),
];
