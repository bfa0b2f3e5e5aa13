// Full DHCP for an isolated provisioning network: addresses from a range with leases, plus the
// same boot information as the proxy. Pure over (config, lease table, request, decision, now):
// the caller persists the table when `changed` is set.
import { applyBoot } from "./boot-options.js";
import type { BootClient, BootDecision } from "./client.js";
import { destinationFor } from "./destination.js";
import type { LeaseTable } from "./leases.js";
import {
  BOOTP_REQUEST,
  BROADCAST_FLAG,
  ipBytes,
  ipFromNumber,
  ipOption,
  MessageType,
  messageType,
  Opt,
  type Packet,
  parseIp,
  replyTo,
  u32,
  ZERO_IP,
} from "./packet.js";
import type { Response } from "./proxy.js";

export interface FullConfig {
  serverIp: string;
  subnetMask: string;
  router?: string;
  dns?: string[];
  /** Seconds. */
  leaseTime: number;
  /** How long an OFFER holds its address for the client's REQUEST. */
  offerHold?: number;
}

export type FullResponse = Response & { changed: boolean };

const silent = (reason: string, changed = false): FullResponse => ({ ignore: reason, changed });

function sameSubnet(a: string, b: string, mask: string): boolean {
  const [x, y, m] = [parseIp(a), parseIp(b), parseIp(mask)];
  return x !== undefined && y !== undefined && m !== undefined && (x & m) >>> 0 === (y & m) >>> 0;
}

function addConfig(reply: Packet, cfg: FullConfig, withLease: boolean): void {
  reply.options.set(Opt.SERVER_ID, ipBytes(cfg.serverIp));
  reply.options.set(Opt.SUBNET_MASK, ipBytes(cfg.subnetMask));
  if (cfg.router) reply.options.set(Opt.ROUTER, ipBytes(cfg.router));
  if (cfg.dns?.length) reply.options.set(Opt.DNS, Buffer.concat(cfg.dns.map(ipBytes)));
  if (withLease) {
    reply.options.set(Opt.LEASE_TIME, u32(cfg.leaseTime));
    reply.options.set(Opt.RENEWAL_TIME, u32(Math.floor(cfg.leaseTime / 2)));
    reply.options.set(Opt.REBINDING_TIME, u32(Math.floor((cfg.leaseTime * 7) / 8)));
  }
}

function nak(cfg: FullConfig, req: Packet, srcPort: number, why: string): FullResponse {
  const reply = replyTo(req, MessageType.NAK);
  reply.options.set(Opt.SERVER_ID, ipBytes(cfg.serverIp));
  reply.options.set(Opt.MESSAGE, Buffer.from(why));
  if (req.giaddr !== ZERO_IP) reply.flags |= BROADCAST_FLAG; // RFC 2131 4.3.2: relay broadcasts it
  return { reply, to: destinationFor(req, srcPort, "nak"), changed: false };
}

export function respondFull(
  cfg: FullConfig,
  table: LeaseTable,
  req: Packet,
  client: BootClient,
  decision: BootDecision,
  srcPort: number,
  now: number,
): FullResponse {
  if (req.op !== BOOTP_REQUEST) return silent("not a BOOTREQUEST");
  if (req.htype !== 1 || req.hlen !== 6)
    return silent(`hardware type ${req.htype}/${req.hlen} is not Ethernet`);
  // The network the client is on: the relay's, or ours.
  const network = req.giaddr !== ZERO_IP ? req.giaddr : cfg.serverIp;
  if (!sameSubnet(network, ipFromNumber(table.range.first), cfg.subnetMask))
    return silent(
      req.giaddr !== ZERO_IP
        ? `relay ${req.giaddr} is not on the served subnet`
        : `server address ${cfg.serverIp} is not on the range's subnet`,
    );
  const mac = client.mac;
  const boot = (reply: Packet) => {
    if (decision.kind === "boot") applyBoot(reply, req, client, decision, cfg.serverIp);
  };

  switch (messageType(req)) {
    case MessageType.DISCOVER: {
      const ip = table.pick(mac, ipOption(req, Opt.REQUESTED_IP), now);
      if (!ip) return silent("address pool exhausted");
      const existing = table.forMac(mac, now);
      // A live bound lease stays as it is; anything else (new, offered, or bound but lapsed, which
      // another client could otherwise take meanwhile) is held for this client as an offer.
      const changed = !(existing?.ip === ip && existing.state === "bound" && existing.expires > now);
      if (changed) table.set({ mac, ip, expires: now + (cfg.offerHold ?? 60), state: "offered" });
      const reply = replyTo(req, MessageType.OFFER);
      reply.yiaddr = ip;
      addConfig(reply, cfg, true);
      boot(reply);
      return { reply, to: destinationFor(req, srcPort), changed };
    }
    case MessageType.REQUEST: {
      const serverId = ipOption(req, Opt.SERVER_ID);
      const requested = ipOption(req, Opt.REQUESTED_IP);
      let ip: string;
      if (serverId !== undefined) {
        // SELECTING: the client chose a server; if not us, our offer is void.
        if (serverId !== cfg.serverIp) {
          const mine = table.forMac(mac, now);
          if (mine?.state === "offered") {
            table.release(mac);
            return silent("client selected another server", true);
          }
          return silent("client selected another server");
        }
        if (!requested) return nak(cfg, req, srcPort, "REQUEST without a requested address");
        ip = requested;
      } else if (req.ciaddr !== ZERO_IP) {
        ip = req.ciaddr; // RENEWING / REBINDING
      } else if (requested) {
        ip = requested; // INIT-REBOOT
      } else {
        return nak(cfg, req, srcPort, "REQUEST names no address");
      }
      const lease = table.forMac(mac, now);
      const ours = lease?.ip === ip || (!lease && table.available(ip, mac, now) && serverId !== undefined);
      if (!ours || !table.inRange(ip)) {
        // Authoritative for the provisioning network: a wrong address is refused, not ignored, so
        // the client restarts at DISCOVER instead of waiting out its timers.
        return nak(cfg, req, srcPort, `address ${ip} is not leased to ${mac}`);
      }
      table.set({ mac, ip, expires: now + cfg.leaseTime, state: "bound" });
      const reply = replyTo(req, MessageType.ACK);
      reply.yiaddr = ip;
      reply.ciaddr = req.ciaddr;
      addConfig(reply, cfg, true);
      boot(reply);
      return { reply, to: destinationFor(req, srcPort), changed: true };
    }
    case MessageType.RELEASE: {
      const lease = table.forMac(mac, now);
      if (!lease || lease.ip !== req.ciaddr) return silent("RELEASE of an address not leased to the client");
      table.release(mac);
      return silent("released", true);
    }
    case MessageType.DECLINE: {
      const ip = ipOption(req, Opt.REQUESTED_IP);
      const lease = table.forMac(mac, now);
      if (!ip || lease?.ip !== ip) return silent("DECLINE of an address not offered to the client");
      table.decline(ip, now, cfg.leaseTime);
      return silent(`declined ${ip}`, true);
    }
    case MessageType.INFORM: {
      if (req.ciaddr === ZERO_IP) return silent("INFORM without ciaddr");
      const reply = replyTo(req, MessageType.ACK);
      reply.ciaddr = req.ciaddr;
      addConfig(reply, cfg, false);
      boot(reply);
      return { reply, to: destinationFor(req, srcPort), changed: false };
    }
    default:
      return silent(`message type ${messageType(req)} is not handled`);
  }
}
