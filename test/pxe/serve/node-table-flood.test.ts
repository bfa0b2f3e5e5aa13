// A DHCP flood with made-up MACs (anyone on the segment can send one) must not grow the node table
// without bound: beyond the cap the oldest nodes that got no further than DHCP are forgotten, with
// one warning, while nodes that went further are kept whatever their age.
import { describe, expect, it } from "vitest";
import { NodeTable, type ServeEvent } from "../../../src/pxe/node-table.js";

const mac = (i: number) =>
  `02:00:${[(i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;

describe("node table under a DHCP flood", () => {
  it("keeps at most maxEarly DHCP-only nodes, forgets the oldest, keeps nodes that went further", () => {
    const table = new NodeTable({ maxEarly: 100 });
    const events: ServeEvent[] = [];
    table.subscribe((e) => events.push(e));
    const real = "52:54:00:00:00:01";
    table.input(real, "dhcp");
    table.input(real, "tftp-start");
    expect(table.get(real)?.state).toBe("tftp");
    for (let i = 0; i < 10_000; i++) table.input(mac(i), "dhcp");
    expect(table.size).toBe(101);
    expect(table.get(real)?.state).toBe("tftp");
    expect(table.get(mac(0))).toBeUndefined();
    expect(table.get(mac(9_999))?.state).toBe("offered");
    expect(table.evicted).toBe(9_900);
    expect(events.filter((e) => e.type === "warning")).toHaveLength(1);
  });

  it("never forgets an installed node (boot once must survive a flood)", () => {
    const table = new NodeTable({ maxEarly: 10 });
    table.touch("52:54:00:00:00:02", true);
    for (let i = 0; i < 1_000; i++) table.input(mac(i), "dhcp");
    expect(table.get("52:54:00:00:00:02")?.installed).toBe(true);
  });
});
