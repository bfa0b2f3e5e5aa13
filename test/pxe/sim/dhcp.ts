// The DHCP side of a simulated node: the packets a PXE ROM and then iPXE send (built with the
// server's own encoder, so a codec bug would show on both sides only if it also fooled the
// decoder on the way back), and one socket on port 68 shared by every simulated node, replies
// told apart by xid as a real segment full of clients would.
import { createSocket, type Socket } from "node:dgram";
import {
  BOOTP_REPLY,
  BOOTP_REQUEST,
  BROADCAST_FLAG,
  decodePacket,
  encodePacket,
  ipBytes,
  MessageType,
  type MessageTypeCode,
  Opt,
  type Packet,
} from "../../../src/pxe/dhcp4/packet.js";

export type ClientKind = "pxe-bios" | "pxe-efi" | "ipxe";

export interface Identity {
  mac: string;
  /** SMBIOS UUID (lower case, dashed). */
  uuid: string;
}

const macBytes = (mac: string) => Buffer.from(mac.split(":").map((h) => Number.parseInt(h, 16)));

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replaceAll("-", ""), "hex");
}

/** What the client says about itself: option 60, 93, 94, 97, and 77 for iPXE. */
function identityOptions(kind: ClientKind, id: Identity): [number, Buffer][] {
  const arch = kind === "pxe-efi" ? 7 : 0;
  const opts: [number, Buffer][] = [
    [Opt.PARAMETER_LIST, Buffer.from([1, 3, 6, 43, 54, 60, 66, 67, 128, 129, 175])],
    [Opt.MAX_MESSAGE_SIZE, Buffer.from([0x05, 0xc0])],
    [Opt.VENDOR_CLASS, Buffer.from(`PXEClient:Arch:0000${arch}:UNDI:002001`)],
    [Opt.CLIENT_ARCH, Buffer.from([0, arch])],
    [Opt.CLIENT_NDI, Buffer.from([1, 2, 1])],
    [Opt.CLIENT_UUID, Buffer.concat([Buffer.from([0]), uuidBytes(id.uuid)])],
  ];
  // iPXE sends user class "iPXE" as one plain string, and its feature list in option 175.
  if (kind === "ipxe")
    opts.push([Opt.USER_CLASS, Buffer.from("iPXE")], [Opt.IPXE_ENCAP, Buffer.from([0x13, 1, 1, 0x11, 1, 1])]);
  return opts;
}

export function dhcpRequest(
  type: MessageTypeCode,
  kind: ClientKind,
  id: Identity,
  xid: number,
  extra: [number, Buffer][] = [],
): Buffer {
  const p: Packet = {
    op: BOOTP_REQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid,
    secs: 4,
    flags: BROADCAST_FLAG,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: Buffer.concat([macBytes(id.mac), Buffer.alloc(10)]),
    sname: "",
    file: "",
    options: new Map<number, Buffer>([
      [Opt.MESSAGE_TYPE, Buffer.from([type])],
      ...identityOptions(kind, id),
      ...extra,
    ]),
  };
  return encodePacket(p);
}

export interface Lease {
  yiaddr: string;
  serverId: string;
  /** siaddr: the TFTP server. */
  nextServer: string;
  bootFile: string;
  /** Retransmissions this exchange needed. */
  retries: number;
}

/**
 * One socket on 0.0.0.0:68 with broadcast on, for every simulated node. A node's exchange waits
 * for the reply with its xid and the message type it expects; anything else (another node's
 * reply, a stray) is left alone.
 */
export class DhcpPort {
  private readonly waiting = new Map<number, { want: number; resolve: (p: Packet) => void }>();
  private constructor(
    private readonly socket: Socket,
    private readonly server: string,
  ) {
    socket.on("message", (msg) => {
      const d = decodePacket(msg);
      if (!d.ok || d.value.op !== BOOTP_REPLY) return;
      const w = this.waiting.get(d.value.xid);
      const type = d.value.options.get(Opt.MESSAGE_TYPE)?.[0];
      if (!w || (type !== w.want && type !== MessageType.NAK)) return;
      this.waiting.delete(d.value.xid);
      w.resolve(d.value);
    });
  }

  /** `server`: where requests go (255.255.255.255 on the segment, as a client without an address). */
  static open(server = "255.255.255.255"): Promise<DhcpPort> {
    const socket = createSocket({ type: "udp4", reuseAddr: true });
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(68, "0.0.0.0", () => {
        socket.setBroadcast(true);
        socket.setRecvBufferSize(8 * 1024 * 1024);
        resolve(new DhcpPort(socket, server));
      });
    });
  }

  /** Sends `packet` until a reply of type `want` with `xid` comes, resending with backoff (2, 4, 8 s...). */
  private ask(
    packet: Buffer,
    xid: number,
    want: number,
    tries: number,
  ): Promise<{ reply: Packet; retries: number }> {
    return new Promise((resolve, reject) => {
      let retries = 0;
      let timer: NodeJS.Timeout | undefined;
      const send = (wait: number) => {
        this.socket.send(packet, 67, this.server);
        timer = setTimeout(() => {
          if (++retries >= tries) {
            this.waiting.delete(xid);
            reject(new Error(`no ${MessageType.OFFER === want ? "OFFER" : "ACK"} after ${tries} tries`));
          } else send(Math.min(wait * 2, 16_000));
        }, wait);
      };
      this.waiting.set(xid, {
        want,
        resolve: (reply) => {
          clearTimeout(timer);
          resolve({ reply, retries });
        },
      });
      send(2000);
    });
  }

  /** DISCOVER -> OFFER -> REQUEST -> ACK, as `kind`. */
  async lease(kind: ClientKind, id: Identity, tries = 5): Promise<Lease> {
    const xid = (Math.random() * 2 ** 32) >>> 0;
    const offer = await this.ask(
      dhcpRequest(MessageType.DISCOVER, kind, id, xid),
      xid,
      MessageType.OFFER,
      tries,
    );
    const serverId = offer.reply.options.get(Opt.SERVER_ID);
    if (serverId?.length !== 4) throw new Error("OFFER without a server identifier");
    const request = dhcpRequest(MessageType.REQUEST, kind, id, xid, [
      [Opt.REQUESTED_IP, ipBytes(offer.reply.yiaddr)],
      [Opt.SERVER_ID, serverId],
    ]);
    const ack = await this.ask(request, xid, MessageType.ACK, tries);
    if (ack.reply.options.get(Opt.MESSAGE_TYPE)?.[0] === MessageType.NAK)
      throw new Error(`NAK: ${ack.reply.options.get(Opt.MESSAGE)?.toString() ?? "no reason"}`);
    const bootFile = ack.reply.file || ack.reply.options.get(Opt.BOOTFILE_NAME)?.toString("latin1") || "";
    return {
      yiaddr: ack.reply.yiaddr,
      serverId: [...serverId].join("."),
      nextServer: ack.reply.siaddr,
      bootFile: bootFile.replace(/\0+$/, ""),
      retries: offer.retries + ack.retries,
    };
  }

  close(): void {
    this.socket.close();
  }
}
