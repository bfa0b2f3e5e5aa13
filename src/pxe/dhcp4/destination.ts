// Where a reply goes (RFC 2131 4.1), decided once for both responders.
import { BROADCAST_FLAG, type Packet, ZERO_IP } from "./packet.js";

export interface Destination {
  address: string;
  port: number;
}

export const LIMITED_BROADCAST = "255.255.255.255";
export const SERVER_PORT = 67;
export const CLIENT_PORT = 68;
export const PXE_PORT = 4011;

/**
 * - relayed (giaddr set): unicast to the relay's server port, never a broadcast on our own link;
 * - client with an address (ciaddr set; renewals, INFORM, PXE port 4011): unicast back to the port
 *   it asked from;
 * - otherwise broadcast. With the broadcast flag set the client asked for it; without it RFC 2131
 *   prefers a unicast to yiaddr, which needs an ARP entry the kernel cannot learn from a client
 *   that has no address yet (setting one needs raw sockets or ioctl), and RFC 2131 allows the
 *   broadcast instead.
 */
export function destinationFor(req: Packet, srcPort: number, type: "reply" | "nak" = "reply"): Destination {
  if (req.giaddr !== ZERO_IP) return { address: req.giaddr, port: SERVER_PORT };
  if (type === "reply" && req.ciaddr !== ZERO_IP)
    return { address: req.ciaddr, port: srcPort > 0 ? srcPort : CLIENT_PORT };
  return { address: LIMITED_BROADCAST, port: CLIENT_PORT };
}

export const broadcastRequested = (req: Packet): boolean => (req.flags & BROADCAST_FLAG) !== 0;
