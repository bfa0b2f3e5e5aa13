import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { describeClient } from "../../../src/pxe/dhcp4/client.js";
import {
  clientArchitectures,
  clientNdi,
  clientUuid,
  decodeEncapsulated,
  decodePacket,
  encodeEncapsulated,
  encodePacket,
  MessageType,
  messageType,
  Opt,
  type Packet,
  userClasses,
} from "../../../src/pxe/dhcp4/packet.js";
import { discover } from "./packets.js";
import { readPcapUdp } from "./pcap.js";

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");

function decoded(b: Buffer): Packet {
  const d = decodePacket(b);
  if (!d.ok) throw new Error(d.error.reason);
  return d.value;
}

describe("DHCPv4 codec", () => {
  it("round-trips a packet with every header field and option", () => {
    const p = discover([
      [Opt.VENDOR_CLASS, Buffer.from("PXEClient:Arch:00007:UNDI:003000")],
      [Opt.CLIENT_ARCH, Buffer.from([0, 7])],
      [Opt.CLIENT_UUID, Buffer.from([0, ...Array.from({ length: 16 }, (_, i) => i)])],
    ]);
    p.ciaddr = "10.1.2.3";
    p.giaddr = "10.9.8.7";
    p.sname = "server";
    p.file = "undionly.kpxe";
    const back = decoded(encodePacket(p));
    expect(back).toEqual(p);
    expect(encodePacket(p).length).toBeGreaterThanOrEqual(300);
  });

  it("splits an option longer than 255 bytes into instances and concatenates them back (RFC 3396)", () => {
    const long = Buffer.from(Array.from({ length: 700 }, (_, i) => i & 0xff));
    const wire = encodePacket(discover([[Opt.USER_CLASS, long]]));
    // Three instances of option 77: 255 + 255 + 190.
    let count = 0;
    for (let i = 240; i < wire.length && wire[i] !== 255; i += 2 + (wire[i + 1] as number))
      if (wire[i] === 77) count++;
    expect(count).toBe(3);
    expect(decoded(wire).options.get(Opt.USER_CLASS)).toEqual(long);
  });

  it("reads options from the file and sname fields when option 52 says so", () => {
    const wire = encodePacket(discover([[Opt.OVERLOAD, Buffer.from([3])]]));
    // file (108..235) holds option 66, sname (44..107) holds another part of option 12.
    Buffer.from([Opt.HOSTNAME, 3, 0x61, 0x62, 0x63, 255]).copy(wire, 108);
    Buffer.from([Opt.HOSTNAME, 2, 0x64, 0x65, 255]).copy(wire, 44);
    const p = decoded(wire);
    expect(p.options.get(Opt.HOSTNAME)?.toString()).toBe("abcde");
    expect(p.file).toBe("");
    expect(p.sname).toBe("");
  });

  it("refuses truncated, cookie-less, over-long and wrongly sized input with a typed error", () => {
    const good = encodePacket(discover());
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, 100), /shorter than the 240-byte header/],
      [Buffer.concat([good.subarray(0, 236), Buffer.from([1, 2, 3, 4]), good.subarray(240)]), /magic cookie/],
      [
        Buffer.concat([good.subarray(0, 240), Buffer.from([60, 200, 1, 2])]),
        /option 60 length 200 runs past/,
      ],
      [
        Buffer.concat([good.subarray(0, 240), Buffer.from([93, 3, 0, 0, 7, 255])]),
        /option 93 has a bad length 3/,
      ],
      [
        Buffer.concat([good.subarray(0, 240), Buffer.from([97, 2, 0, 0, 255])]),
        /option 97 has a bad length 2/,
      ],
      [Buffer.concat([good.subarray(0, 240), Buffer.from([52, 1, 7, 255])]), /overload\) value 7/],
      [Buffer.alloc(10_000), /longer than 9000/],
    ];
    for (const [wire, reason] of cases) {
      const d = decodePacket(wire);
      expect(d.ok).toBe(false);
      if (!d.ok) {
        expect(d.error.kind).toBe("dhcp-decode-error");
        expect(d.error.reason).toMatch(reason);
      }
    }
    const badHlen = Buffer.from(good);
    badHlen[2] = 17;
    expect(decodePacket(badHlen)).toMatchObject({ ok: false, error: { reason: /hlen 17/ } });
  });

  it("reads user class 77 in both the RFC 3004 list form and iPXE's plain string", () => {
    expect(userClasses(discover([[Opt.USER_CLASS, Buffer.from("iPXE")]]))).toEqual(["iPXE"]);
    const rfc = Buffer.from([4, ...Buffer.from("iPXE"), 3, ...Buffer.from("abc")]);
    expect(userClasses(discover([[Opt.USER_CLASS, rfc]]))).toEqual(["iPXE", "abc"]);
  });

  it("encodes and decodes vendor sub-options (43/175)", () => {
    const v = encodeEncapsulated([
      [6, Buffer.from([8])],
      [71, Buffer.from([0x80, 0, 0, 0])],
    ]);
    const d = decodeEncapsulated(v);
    expect(d.ok && [...d.value.entries()]).toEqual([
      [6, Buffer.from([8])],
      [71, Buffer.from([0x80, 0, 0, 0])],
    ]);
    expect(decodeEncapsulated(Buffer.from([6, 5, 1])).ok).toBe(false);
  });
});

describe("packets captured from real firmware (test/pxe/dhcp4/fixtures/capture.sh)", () => {
  it("QEMU's iPXE ROM under SeaBIOS: BIOS arch 0, UNDI 2.1, user class iPXE, option 175, the SMBIOS UUID", () => {
    const records = readPcapUdp(path.join(fixtures, "seabios-ipxe.pcap"));
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) {
      expect(r.dstPort).toBe(67);
      const p = decoded(r.payload);
      expect(messageType(p)).toBe(MessageType.DISCOVER);
      expect(clientArchitectures(p)).toEqual([0]);
      expect(clientNdi(p)).toEqual({ type: 1, major: 2, minor: 1 });
      expect(userClasses(p)).toEqual(["iPXE"]);
      expect(p.options.has(Opt.IPXE_ENCAP)).toBe(true);
      // capture.sh passes -smbios type=1,uuid=8c6c7a1e-4b6f-4d2a-9e3b-0123456789ab
      expect(clientUuid(p)).toBe("8c6c7a1e-4b6f-4d2a-9e3b-0123456789ab");
      const c = describeClient(p);
      expect(c).toMatchObject({
        mac: "52:54:00:12:34:56",
        arch: 0,
        pxe: true,
        ipxe: true,
        httpClient: false,
      });
      // Decoding then encoding keeps every option byte for byte.
      expect(decoded(encodePacket(p)).options).toEqual(p.options);
    }
  });

  it("OVMF's own PXE client (EDK2, no iPXE): x64 UEFI arch 7, UNDI 3.0, broadcast flag, not iPXE", () => {
    const records = readPcapUdp(path.join(fixtures, "ovmf-pxe.pcap"));
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) {
      const p = decoded(r.payload);
      expect(messageType(p)).toBe(MessageType.DISCOVER);
      expect(p.flags & 0x8000).toBe(0x8000);
      expect(clientArchitectures(p)).toEqual([7]);
      expect(clientNdi(p)).toEqual({ type: 1, major: 3, minor: 0 });
      expect(clientUuid(p)).toBe("8c6c7a1e-4b6f-4d2a-9e3b-0123456789ab");
      expect(describeClient(p)).toMatchObject({
        vendorClass: "PXEClient:Arch:00007:UNDI:003000",
        arch: 7,
        pxe: true,
        ipxe: false,
        userClasses: [],
      });
    }
  });

  it("OVMF's UEFI HTTP Boot client: option 60 HTTPClient, x64 HTTP arch 16, the SMBIOS UUID", () => {
    const records = readPcapUdp(path.join(fixtures, "ovmf-http.pcap"));
    expect(records.length).toBeGreaterThan(0);
    for (const r of records) {
      const p = decoded(r.payload);
      expect(messageType(p)).toBe(MessageType.DISCOVER);
      expect(clientArchitectures(p)).toEqual([16]);
      expect(clientUuid(p)).toBe("8c6c7a1e-4b6f-4d2a-9e3b-0123456789ab");
      expect(describeClient(p)).toMatchObject({
        vendorClass: "HTTPClient:Arch:00016:UNDI:003000",
        pxe: false,
        httpClient: true,
        ipxe: false,
      });
    }
  });
});
