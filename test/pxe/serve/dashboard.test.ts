// The live node table: it fits 80x24, stays ASCII under TERM=linux/vt100, keeps the selected node
// in view among many, and shows a node's timeline with the time spent in each state.
import { describe, expect, it } from "vitest";
import { renderDashboard, wantsAscii } from "../../../src/pxe/dashboard.js";
import { nodeStatus } from "../../../src/pxe/http/status.js";
import { NodeTable } from "../../../src/pxe/node-table.js";

function fleet(n: number) {
  let t = 0;
  const table = new NodeTable({ now: () => t });
  for (let i = 0; i < n; i++) {
    const mac = `52:54:00:00:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    table.input(mac, "dhcp", "DISCOVER -> OFFER, boot file undionly.kpxe");
    t += 1500;
    table.input(mac, "tftp-start", "undionly.kpxe (70000 bytes, blksize 1468, windowsize 4)");
    t += 800;
    table.input(mac, "tftp-done", "undionly.kpxe: 70000 bytes in 800 ms, 0 retransmits", 70_000);
    if (i % 3 === 0) table.input(mac, "ipxe-dhcp", "a very long detail ".repeat(10));
  }
  t += 200_000;
  table.sweep();
  return { table, now: t };
}

describe("the serve dashboard", () => {
  it("fits 80x24 in ASCII with many nodes, the selection kept in view", () => {
    const { table, now } = fleet(60);
    const nodes = table.all().map((n) => nodeStatus(n, undefined, now));
    const lines = renderDashboard({
      header: "kvmstrap serve  HTTP http://10.0.0.1:8080",
      nodes,
      selected: 45,
      detail: false,
      width: 80,
      height: 24,
      ascii: true,
    });
    expect(lines).toHaveLength(24);
    for (const l of lines) {
      expect(l.length).toBeLessThanOrEqual(80);
      expect(l).toMatch(/^[\x20-\x7e]*$/);
    }
    expect(lines[1]).toContain("60 nodes");
    expect(lines[3]).toMatch(/MAC\s+STATE\s+ELAPSED\s+BYTES\s+LAST EVENT/);
    const selected = lines.find((l) => l.startsWith("> "));
    expect(selected).toContain("52:54:00:00:00:2d");
    // Stalled nodes say in which state they stopped.
    expect(lines.some((l) => l.includes("STALL:tftp"))).toBe(true);
    expect(lines.at(-1)).toContain("q quit");
  });

  it("shows the selected node's timeline with each state's duration", () => {
    const { table, now } = fleet(1);
    const nodes = table.all().map((n) => nodeStatus(n, undefined, now));
    const lines = renderDashboard({
      header: "h",
      nodes,
      selected: 0,
      detail: true,
      width: 80,
      height: 24,
      ascii: true,
    });
    const text = lines.join("\n");
    expect(text).toContain("52:54:00:00:00:00: stalled");
    expect(text).toMatch(/offered -> tftp\s+1\.5 s/);
    expect(text).toContain("ipxe -> stalled");
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(80);
  });

  it("shows the latest warning in place of the first rule, cut to the width", () => {
    const lines = renderDashboard({
      header: "h",
      nodes: [],
      selected: 0,
      detail: false,
      width: 80,
      height: 24,
      ascii: true,
      notice: "no netboot set: ".repeat(10),
    });
    expect(lines[2]?.startsWith("! no netboot set: ")).toBe(true);
    expect(lines[2]?.length).toBe(80);
  });

  it("uses ASCII on serial consoles and non-UTF-8 locales", () => {
    expect(wantsAscii({ TERM: "vt100", LANG: "en_US.UTF-8" })).toBe(true);
    expect(wantsAscii({ TERM: "linux", LANG: "C.UTF-8" })).toBe(true);
    expect(wantsAscii({ TERM: "xterm-256color", LANG: "C" })).toBe(true);
    expect(wantsAscii({ TERM: "xterm-256color", LANG: "en_US.UTF-8" })).toBe(false);
  });
});

describe("keys", () => {
  it("splits one read into keys: arrows (CSI and SS3), page keys, Enter, Escape, letters", async () => {
    const { splitKeys } = await import("../../../src/pxe/dashboard.js");
    expect(splitKeys("\x1b[B\x1bOB\r\x1b[6~q\x1b")).toEqual([
      "\x1b[B",
      "\x1bOB",
      "\r",
      "\x1b[6~",
      "q",
      "\x1b",
    ]);
  });
});
