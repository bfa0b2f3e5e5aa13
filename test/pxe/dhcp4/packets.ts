// Hand-built requests for the responder and codec tests.
import {
  BOOTP_REQUEST,
  MessageType,
  type MessageTypeCode,
  Opt,
  type Packet,
} from "../../../src/pxe/dhcp4/packet.js";

export function request(
  type: MessageTypeCode,
  extra: [number, Buffer][] = [],
  mac = "52:54:00:aa:bb:cc",
): Packet {
  return {
    op: BOOTP_REQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0x12345678,
    secs: 3,
    flags: 0x8000,
    ciaddr: "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: Buffer.concat([Buffer.from(mac.split(":").map((h) => Number.parseInt(h, 16))), Buffer.alloc(10)]),
    sname: "",
    file: "",
    options: new Map<number, Buffer>([[Opt.MESSAGE_TYPE, Buffer.from([type])], ...extra]),
  };
}

export const discover = (extra: [number, Buffer][] = [], mac?: string): Packet =>
  request(MessageType.DISCOVER, extra, mac);
