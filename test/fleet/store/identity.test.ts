// Identity resolution (src/fleet/store/identity.ts), the pure decision: which node a boot or a
// report is, and what gets flagged instead of merged.
import { describe, expect, it } from "vitest";
import {
  type KnownNode,
  normalMac,
  normalSerial,
  normalUuid,
  resolveIdentity,
} from "../../../src/fleet/store/identity.js";

const U1 = "4c4c4544-0042-3510-8052-b4c04f4e3732";
const U2 = "36b5d9d8-1c53-4a34-9d8f-0f0c8e2f6a01";
const A: KnownNode = {
  id: 1,
  uuid: U1,
  serial: "CZ1234ABCD",
  macs: ["52:54:00:00:00:01", "52:54:00:00:00:02"],
};
const B: KnownNode = { id: 2, uuid: U2, serial: "CZ9999ZZZZ", macs: ["52:54:00:00:00:09"] };

describe("normalising what firmware reports", () => {
  it("takes placeholder UUIDs as unknown, real ones lower case", () => {
    expect(normalUuid("00000000-0000-0000-0000-000000000000")).toBeNull();
    expect(normalUuid("03000200-0400-0500-0006-000700080009")).toBeNull();
    expect(normalUuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")).toBeNull();
    expect(normalUuid("not-a-uuid")).toBeNull();
    expect(normalUuid(U1.toUpperCase())).toBe(U1);
  });
  it("takes placeholder serials as unknown", () => {
    for (const s of [
      "To Be Filled By O.E.M.",
      "Default string",
      "  ",
      "0000000",
      "System Serial Number",
      "N/A",
    ])
      expect(normalSerial(s), s).toBeNull();
    expect(normalSerial(" CZ1234ABCD ")).toBe("CZ1234ABCD");
  });
  it("spells MACs one way and drops what no NIC has", () => {
    expect(normalMac("52-54-00-AB-CD-EF")).toBe("52:54:00:ab:cd:ef");
    expect(normalMac("00:00:00:00:00:00")).toBeNull();
    expect(normalMac("ff:ff:ff:ff:ff:ff")).toBeNull();
    expect(normalMac("01:00:5e:00:00:01")).toBeNull(); // multicast
  });
});

describe("resolveIdentity", () => {
  it("a new machine is a new node", () => {
    const r = resolveIdentity({ uuid: U2, serial: "NEW1", macs: ["52:54:00:00:00:77"] }, [A]);
    expect(r.nodeId).toBeUndefined();
    expect(r.flags).toEqual([]);
  });

  it("the same UUID and serial is the same node", () => {
    const r = resolveIdentity({ uuid: U1, serial: "CZ1234ABCD", macs: ["52:54:00:00:00:01"] }, [A, B]);
    expect(r.nodeId).toBe(1);
    expect(r.flags).toEqual([]);
  });

  it("a NIC swap keeps the node: new MACs attached, gone ones dropped from a complete set", () => {
    const r = resolveIdentity(
      { uuid: U1, serial: "CZ1234ABCD", macs: ["52:54:00:00:00:01", "52:54:00:00:00:55"], complete: true },
      [A],
    );
    expect(r.nodeId).toBe(1);
    expect(r.macs).toEqual(["52:54:00:00:00:01", "52:54:00:00:00:55"]);
    expect(r.dropMacs).toEqual(["52:54:00:00:00:02"]);
    expect(r.flags.filter((f) => f.hold)).toEqual([]);
  });

  it("a DHCP boot (MAC only) finds the node; iPXE's UUID and serial later fill in a MAC-only node", () => {
    expect(resolveIdentity({ macs: ["52:54:00:00:00:02"] }, [A, B]).nodeId).toBe(1);
    const macOnly: KnownNode = { id: 3, uuid: null, serial: null, macs: ["52:54:00:00:00:33"] };
    const r = resolveIdentity({ uuid: U2, serial: "S3", macs: ["52:54:00:00:00:33"] }, [macOnly]);
    expect(r.nodeId).toBe(3);
    expect([r.uuid, r.serial]).toEqual([U2, "S3"]);
  });

  it("a motherboard swap with the old add-in NIC: same node, flagged and held", () => {
    const r = resolveIdentity({ uuid: U2, serial: "CZ1234ABCD", macs: ["52:54:00:00:00:02"] }, [A]);
    expect(r.nodeId).toBe(1);
    expect(r.uuid).toBe(U2);
    expect(r.flags.map((f) => [f.kind, f.hold])).toEqual([["uuid-changed", true]]);
  });

  it("a motherboard swap with no NIC left: a new node, flagged with the node it may replace", () => {
    const r = resolveIdentity({ uuid: U2, serial: "CZ1234ABCD", macs: ["52:54:00:00:00:66"] }, [A]);
    expect(r.nodeId).toBeUndefined();
    expect(r.flags).toMatchObject([{ kind: "duplicate-serial", other: 1, hold: true }]);
  });

  it("two machines sharing a real UUID (cloned firmware) stay two nodes, flagged", () => {
    const r = resolveIdentity({ uuid: U1, serial: "OTHER-SERIAL", macs: ["52:54:00:00:00:44"] }, [A]);
    expect(r.nodeId).toBeUndefined();
    expect(r.flags).toMatchObject([{ kind: "duplicate-uuid", other: 1, hold: true }]);
  });

  it("a UUID with a re-programmed serial and the same NIC: same node, flagged", () => {
    const r = resolveIdentity({ uuid: U1, serial: "REPROGRAMMED", macs: ["52:54:00:00:00:01"] }, [A]);
    expect(r.nodeId).toBe(1);
    expect(r.flags).toMatchObject([{ kind: "serial-changed", hold: true }]);
  });

  for (const placeholder of [
    "00000000-0000-0000-0000-000000000000",
    "03000200-0400-0500-0006-000700080009",
  ]) {
    it(`machines that all report ${placeholder} are told apart by serial, then MACs`, () => {
      const p1: KnownNode = { id: 5, uuid: null, serial: "SER-A", macs: ["52:54:00:00:05:01"] };
      const p2: KnownNode = { id: 6, uuid: null, serial: null, macs: ["52:54:00:00:06:01"] };
      const bySerial = resolveIdentity({ uuid: placeholder, serial: "SER-B", macs: ["52:54:00:00:07:01"] }, [
        p1,
        p2,
      ]);
      expect(bySerial.nodeId).toBeUndefined();
      expect(bySerial.uuid).toBeNull();
      expect(resolveIdentity({ uuid: placeholder, serial: "SER-A", macs: [] }, [p1, p2]).nodeId).toBe(5);
      const byMac = resolveIdentity(
        { uuid: placeholder, serial: "To Be Filled By O.E.M.", macs: ["52:54:00:00:06:01"] },
        [p1, p2],
      );
      expect(byMac.nodeId).toBe(6);
      const neither = resolveIdentity(
        { uuid: placeholder, serial: "Default string", macs: ["52:54:00:00:08:01"] },
        [p1, p2],
      );
      expect(neither.nodeId).toBeUndefined();
      expect(neither.flags).toEqual([]);
    });
  }

  it("a NIC moved into another known machine: its MAC moves, the machines stay apart", () => {
    const r = resolveIdentity(
      { uuid: U2, serial: "CZ9999ZZZZ", macs: ["52:54:00:00:00:09", "52:54:00:00:00:02"] },
      [A, B],
    );
    expect(r.nodeId).toBe(2);
    expect(r.flags).toMatchObject([{ kind: "mac-moved", other: 1, hold: false }]);
  });

  it("a new machine holding a known machine's NIC is a new node, not that machine", () => {
    const r = resolveIdentity(
      { uuid: "11111111-2222-3333-4444-555555555555", serial: "Z", macs: ["52:54:00:00:00:01"] },
      [A],
    );
    expect(r.nodeId).toBeUndefined();
    expect(r.flags).toMatchObject([{ kind: "mac-moved", other: 1 }]);
  });

  it("MACs on two nodes with nothing else known: the one with more of them, flagged", () => {
    const r = resolveIdentity({ macs: ["52:54:00:00:00:01", "52:54:00:00:00:02", "52:54:00:00:00:09"] }, [
      A,
      B,
    ]);
    expect(r.nodeId).toBe(1);
    expect(r.flags.map((f) => f.kind)).toEqual(["ambiguous", "mac-moved"]);
  });

  it("a UUID alone that two nodes share (their serials differ) is not guessed", () => {
    const twin: KnownNode = { id: 7, uuid: U1, serial: "TWIN", macs: ["52:54:00:00:07:07"] };
    const r = resolveIdentity({ uuid: U1, macs: [] }, [A, twin]);
    expect(r.nodeId).toBeUndefined();
    expect(r.flags).toMatchObject([{ kind: "ambiguous", hold: true }]);
    expect(resolveIdentity({ uuid: U1, macs: ["52:54:00:00:07:07"] }, [A, twin]).nodeId).toBe(7);
  });
});
