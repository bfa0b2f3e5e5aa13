// The answer's virtual networks as plan actions. libvirt NAT and isolated networks go through the
// libvirt port (define with autostart, then start; undo stops and undefines only kvmstrap's own).
// Open vSwitch bridges and their uplinks are ovs-vsctl commands with their inverses, effect
// "network": they sit in the same confirm-or-revert group as the host's bridges, right after them
// (an uplink may be a bond the host plan makes). A VM's access or trunk port is made by libvirt from
// the domain XML when the VM starts (src/vm/domain-xml.ts), so it needs no action here.
import { createHash } from "node:crypto";
import type { LibvirtNetwork, OvsBridge } from "../answer/schema-networks.js";
import type { HostReport } from "../detect/types.js";
import { type OvsDatapath, ovsArgv } from "../host/ovs-vsctl.js";
import { isRefused, type PlanContext, planCommand } from "./context.js";
import { renderLibvirtNetworkXml } from "./render/virtual-network-xml.js";

/** A UUID derived from the network's definition: how apply knows a network of that name is this one. */
export function networkUuid(xmlWithoutUuid: string): string {
  const h = createHash("sha256").update(xmlWithoutUuid).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

export function libvirtNetworkXml(n: LibvirtNetwork): { xml: string; uuid: string } {
  const uuid = networkUuid(renderLibvirtNetworkXml(n));
  return { xml: renderLibvirtNetworkXml(n, uuid), uuid };
}

export function planLibvirtNetworks(ctx: PlanContext): void {
  ctx.answer.network?.libvirt?.forEach((n, i) => {
    if (isRefused(ctx, `network.libvirt[${i}]`)) return;
    const { xml, uuid } = libvirtNetworkXml(n);
    const what = n.mode === "nat" ? "NAT" : "isolated";
    ctx.actions.push({
      kind: "libvirt",
      op: "define-network",
      id: `libvirt.network.${n.name}.define`,
      summary: `libvirt ${what} network ${n.name} on ${n.bridge} (${n.address})`,
      effect: "none",
      name: n.name,
      xml,
      uuid,
      autostart: n.autostart,
      remediation: `virsh net-list --all shows the networks; a network named ${n.name} that kvmstrap did not define is never replaced`,
    });
    ctx.actions.push({
      kind: "libvirt",
      op: "start-network",
      id: `libvirt.network.${n.name}.start`,
      summary: `start the libvirt network ${n.name}`,
      effect: "none",
      name: n.name,
    });
  });
}

/** The datapath a bridge gets on this host: the kernel's when its module is there, else user space. */
export function datapathOf(b: OvsBridge, report: HostReport): OvsDatapath {
  if (b.datapath !== "auto") return b.datapath;
  return report.vswitch?.ovsModule === false ? "netdev" : "system";
}

export function planOvs(ctx: PlanContext): void {
  ctx.answer.network?.ovs?.forEach((b, i) => {
    if (isRefused(ctx, `network.ovs[${i}]`)) return;
    const datapath = datapathOf(b, ctx.report);
    planCommand(ctx, {
      id: `ovs.bridge.${b.name}`,
      argv: ovsArgv.addBridge(b.name, datapath),
      undo: ovsArgv.deleteBridge(b.name),
      check: ovsArgv.bridgeExists(b.name),
      effect: "network",
      summary: `Open vSwitch bridge ${b.name} (datapath ${datapath}${datapath === "netdev" ? ": user space, no openvswitch module here" : ""})`,
    });
    const added = ctx.actions.at(-1);
    if (added)
      added.remediation =
        "is Open vSwitch installed and running? (apt install openvswitch-switch; ovs-vsctl show)";
    if (b.uplink)
      planCommand(ctx, {
        id: `ovs.bridge.${b.name}.uplink`,
        argv: ovsArgv.addPort(b.name, b.uplink),
        undo: ovsArgv.deletePort(b.name, b.uplink),
        check: ovsArgv.portOnBridge(b.name, b.uplink),
        effect: "network",
        summary: `${b.uplink} as ${b.name}'s uplink (a trunk of every VLAN)`,
      });
  });
}
