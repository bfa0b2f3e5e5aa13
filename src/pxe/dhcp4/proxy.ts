// ProxyDHCP (PXE spec 2.1, RFC 4578): runs beside the site's DHCP server, answers only PXE and
// HTTP Boot clients, and only with boot information: yiaddr stays 0.0.0.0, no lease, no address.
//  - port 67: DISCOVER -> OFFER (broadcast, or to the relay); a REQUEST naming us as server -> ACK;
//  - port 4011: the client's REQUEST (or INFORM) -> ACK unicast back to it (PXE boot server step).
import { applyBoot } from "./boot-options.js";
import type { BootClient, BootDecision } from "./client.js";
import { type Destination, destinationFor, PXE_PORT } from "./destination.js";
import {
  BOOTP_REQUEST,
  ipBytes,
  ipOption,
  MessageType,
  messageType,
  Opt,
  type Packet,
  replyTo,
} from "./packet.js";

export type Response = { reply: Packet; to: Destination } | { ignore: string };

export interface ProxyConfig {
  /** The address of the interface we serve on: option 54 and the default TFTP server. */
  serverIp: string;
}

/** Whether a request is for a ProxyDHCP at all, before asking the boot policy. */
export function proxyCandidate(req: Packet, client: BootClient, port: number): string | undefined {
  if (req.op !== BOOTP_REQUEST) return "not a BOOTREQUEST";
  // Boot policy and per-node scripts are keyed by MAC: only Ethernet clients have one here.
  if (req.htype !== 1 || req.hlen !== 6) return `hardware type ${req.htype}/${req.hlen} is not Ethernet`;
  if (!client.pxe && !client.httpClient) return "not a PXE or HTTP Boot client (option 60)";
  const type = messageType(req);
  if (port === PXE_PORT) {
    if (type !== MessageType.REQUEST && type !== MessageType.INFORM)
      return `message type ${type} on port 4011`;
    return undefined;
  }
  if (type === MessageType.DISCOVER) return undefined;
  if (type === MessageType.REQUEST) return undefined; // checked against option 54 in respondProxy
  return `message type ${type} is not for a ProxyDHCP`;
}

export function respondProxy(
  cfg: ProxyConfig,
  req: Packet,
  client: BootClient,
  decision: BootDecision,
  port: number,
  srcPort: number,
): Response {
  const why = proxyCandidate(req, client, port);
  if (why) return { ignore: why };
  if (decision.kind === "ignore") return { ignore: decision.reason };
  const type = messageType(req);
  if (port !== PXE_PORT && type === MessageType.REQUEST) {
    // On 67 a REQUEST normally selects the site's server: answer only one addressed to us.
    if (ipOption(req, Opt.SERVER_ID) !== cfg.serverIp) return { ignore: "REQUEST for another server" };
  }
  const reply = replyTo(req, type === MessageType.DISCOVER ? MessageType.OFFER : MessageType.ACK);
  reply.options.set(Opt.SERVER_ID, ipBytes(cfg.serverIp));
  applyBoot(reply, req, client, decision, cfg.serverIp);
  // The PXE spec has the port-4011 ACK go back to the client's address and port.
  if (port === PXE_PORT && req.ciaddr !== "0.0.0.0") reply.ciaddr = req.ciaddr;
  return { reply, to: destinationFor(req, srcPort) };
}
