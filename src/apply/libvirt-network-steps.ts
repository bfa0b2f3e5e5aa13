// libvirt networks (NAT, isolated) as steps through the libvirt port. A definition is kvmstrap's when
// the network of that name carries the uuid the plan derived from its XML: a network of the same name
// that kvmstrap did not define (or defined differently) is never replaced, and undo removes only its
// own. Started networks are stopped on undo only when they were not running before.
import type { LibvirtAction } from "../plan/actions.js";
import type { Libvirt } from "../vm/libvirt.js";
import { DeployError } from "../vm/vm-state.js";
import type { Before } from "./journal.js";

export type NetworkAction = Extract<LibvirtAction, { op: "define-network" | "start-network" }>;

export const isNetworkAction = (a: LibvirtAction): a is NetworkAction =>
  a.op === "define-network" || a.op === "start-network";

async function networkOf(lv: Libvirt, a: NetworkAction) {
  const net = (await lv.netList()).find((n) => n.name === a.name);
  if (!net) return { state: "absent" as const, active: false };
  if (a.op === "start-network") return { state: "ours" as const, active: net.active };
  const xml = await lv.netXml(a.name);
  return {
    state: xml.includes(`<uuid>${a.uuid}</uuid>`) ? ("ours" as const) : ("other" as const),
    active: net.active,
  };
}

export function describeNetwork(a: NetworkAction): string {
  return a.op === "define-network"
    ? `define the libvirt network ${a.name}${a.autostart ? " (autostart)" : ""}`
    : `start the libvirt network ${a.name}`;
}

export async function networkApplied(a: NetworkAction, lv: Libvirt): Promise<boolean> {
  const n = await networkOf(lv, a);
  return a.op === "define-network" ? n.state === "ours" : n.active;
}

export async function captureNetworkBefore(a: NetworkAction, lv: Libvirt): Promise<Before> {
  const n = await networkOf(lv, a);
  return { content: a.op === "start-network" ? (n.active ? "active" : null) : null };
}

export async function carryOutNetwork(a: NetworkAction, lv: Libvirt): Promise<void> {
  const n = await networkOf(lv, a);
  if (a.op === "start-network") {
    if (!n.active) await lv.netStart(a.name);
    return;
  }
  if (n.state === "other")
    throw new DeployError(
      "name-taken",
      `name taken: a libvirt network named ${a.name} exists and is not this answer's definition`,
      `rename it in the answer, or remove the existing one (virsh net-destroy ${a.name}; virsh net-undefine ${a.name})`,
    );
  if (n.state === "absent") await lv.netDefine(a.xml);
  await lv.netAutostart(a.name, a.autostart);
}

export async function revertNetwork(
  a: NetworkAction,
  before: Before | undefined,
  lv: Libvirt,
): Promise<void> {
  const n = await networkOf(lv, a);
  if (n.state === "absent") return;
  if (a.op === "start-network") {
    if (before?.content !== "active" && n.active) await lv.netDestroy(a.name);
    return;
  }
  if (n.state !== "ours") return;
  if (n.active) await lv.netDestroy(a.name);
  await lv.netUndefine(a.name);
}
