// A node's power port from its power settings (the store keeps them per node; the tests build them).
import { VirshLibvirt } from "../../vm/virsh-libvirt.js";
import { IpmiPower, type IpmiTarget } from "./ipmi.js";
import { LibvirtPower } from "./libvirt.js";
import type { PowerPort } from "./port.js";
import { RedfishPower, type RedfishTarget } from "./redfish.js";

export type { PowerPort, PowerState } from "./port.js";
export { PowerError } from "./port.js";

export type PowerSettings =
  | { driver: "libvirt"; domain: string; uri?: string }
  | ({ driver: "ipmi" } & IpmiTarget)
  | ({ driver: "redfish" } & RedfishTarget);

export function powerPort(s: PowerSettings): PowerPort {
  if (s.driver === "libvirt") return new LibvirtPower(new VirshLibvirt(s.uri ?? "qemu:///system"), s.domain);
  if (s.driver === "ipmi") return new IpmiPower(s);
  return new RedfishPower(s);
}
