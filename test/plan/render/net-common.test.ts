import { describe, expect, it } from "vitest";
import { checkNetwork, mastersOf, mtuOf } from "../../../src/plan/render/net-common.js";
import type { NetworkDesired } from "../../../src/plan/render/types.js";
import { NETS } from "./helpers.js";

const base = () => structuredClone(NETS["bond under a bridge"] as NetworkDesired);

describe("checkNetwork", () => {
  it("accepts the sample states", () => {
    for (const n of Object.values(NETS)) expect(() => checkNetwork(n)).not.toThrow();
  });

  it("refuses dangling references, double enslavement, addresses on ports and injected text", () => {
    const cases: [string, (n: NetworkDesired) => void, RegExp][] = [
      ["bond member missing", (n) => n.ports.pop(), /eno2 is not among the ports/],
      [
        "vlan link missing",
        (n) => n.vlans.push({ name: "v5", id: 5, link: "nope", dhcp: false, addresses: [] }),
        /link nope/,
      ],
      [
        "vlan id",
        (n) => n.vlans.push({ name: "v5", id: 4095, link: "vmbr0", dhcp: false, addresses: [] }),
        /4095/,
      ],
      ["twice enslaved", (n) => n.bridges[0]?.ports.push("eno1"), /both bond0 and vmbr0/],
      [
        "address on an enslaved bond",
        (n) => Object.assign(n.bonds[0] ?? {}, { dhcp: true }),
        /enslaved to vmbr0/,
      ],
      [
        "newline in a value",
        (n) => Object.assign(n.bridges[0] ?? {}, { gateway: "1.2.3.4\nDNS=6.6.6.6" }),
        /invalid value/,
      ],
      ["bad name", (n) => Object.assign(n.bridges[0] ?? {}, { name: "br 0" }), /invalid interface name/],
      ["bad MAC", (n) => Object.assign(n.ports[0] ?? {}, { mac: "52:54:00" }), /invalid MAC/],
      [
        "address without prefix",
        (n) => Object.assign(n.bridges[0] ?? {}, { dhcp: false, addresses: ["10.0.0.1"] }),
        /prefix/,
      ],
      ["duplicate name", (n) => n.ports.push({ name: "vmbr0" }), /defined twice/],
    ];
    for (const [what, mutate, error] of cases) {
      const n = base();
      mutate(n);
      expect(() => checkNetwork(n), what).toThrow(error);
    }
  });

  it("finds masters and inherits a bridge MTU down through a bond to its NICs", () => {
    const n = base();
    Object.assign(n.bridges[0] ?? {}, { mtu: 9000 });
    const m = mastersOf(n);
    expect(m.get("eno1")).toEqual({ kind: "bond", name: "bond0" });
    expect(m.get("bond0")).toEqual({ kind: "bridge", name: "vmbr0" });
    expect(mtuOf(n, "eno2", m)).toBe(9000);
  });
});
