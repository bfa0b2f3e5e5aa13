// The per-node state machine: the transition table row by row, timeouts into "stalled" with the hint
// that says where to look, durations on every change, and inputs out of order (recorded, never thrown).
import { describe, expect, it } from "vitest";
import {
  NODE_INPUTS,
  NODE_STATES,
  type NodeInput,
  type NodeState,
  TIMEOUTS,
  TRANSITIONS,
} from "../../../src/pxe/node-state.js";
import { NodeTable, type ServeEvent, TIMELINE_MAX } from "../../../src/pxe/node-table.js";

const MAC = "52:54:00:12:34:56";
const PRE_INSTALL: NodeState[] = [
  "discovered",
  "offered",
  "tftp",
  "ipxe",
  "script",
  "kernel",
  "initrd",
  "rootfs",
  "appliance-up",
  "answer-fetched",
  "installing",
  "failed",
  "stalled",
];
const AFTER_INSTALL: NodeState[] = ["installed", "local-boot", "rebooted", "verified"];
const CHAIN: [NodeInput, NodeState][] = [
  ["dhcp", "offered"],
  ["tftp-start", "tftp"],
  ["ipxe-dhcp", "ipxe"],
  ["script", "script"],
  ["kernel", "kernel"],
  ["initrd", "initrd"],
  ["rootfs", "rootfs"],
  ["appliance-up", "appliance-up"],
  ["answer-fetched", "answer-fetched"],
  ["installing", "installing"],
  ["installed", "installed"],
];

/** The chain in order, and the inputs that report something already started (never a new boot). */
const CHAIN_ORDER: NodeState[] = [...CHAIN.map(([, s]) => s), ...AFTER_INSTALL.slice(1)];
const REPORTS: NodeInput[] = ["appliance-up", "answer-fetched", "installing"];
const ENDS: NodeInput[] = ["tftp-done", "tftp-failed", "http-done", "http-aborted"];

function clocked() {
  let t = 1_000_000;
  const events: ServeEvent[] = [];
  const table = new NodeTable({ now: () => t, unattended: (m) => m === MAC });
  table.subscribe((e) => events.push(e));
  return { table, events, advance: (ms: number) => (t += ms) };
}

describe("the transition table", () => {
  it("has a row for every state, and every row leads only to states", () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...NODE_STATES].sort());
    for (const row of Object.values(TRANSITIONS))
      for (const [input, to] of Object.entries(row)) {
        expect(NODE_INPUTS).toContain(input);
        expect(NODE_STATES).toContain(to);
      }
  });

  it("accepts every boot-chain and appliance input from every state before the install is done", () => {
    for (const state of PRE_INSTALL)
      for (const [input, to] of CHAIN) {
        // An appliance report behind the node's state is late, not a step back (see below).
        const late = REPORTS.includes(input) && CHAIN_ORDER.indexOf(state) > CHAIN_ORDER.indexOf(to);
        expect(TRANSITIONS[state][input], `${state} + ${input}`).toBe(late ? state : to);
      }
  });

  it("never moves a node back along the chain on a report of something already under way", () => {
    // The end of a TFTP transfer or a download, and the appliance's own reports, may arrive after
    // the node moved on (the ROM's last ACK races iPXE's DISCOVER; the appliance's sender is
    // asynchronous). Each is accepted in every later state, and keeps it.
    for (const state of CHAIN_ORDER)
      for (const input of [...REPORTS, ...ENDS]) {
        const to = TRANSITIONS[state][input];
        if (to === undefined) continue;
        expect(CHAIN_ORDER.indexOf(to), `${state} + ${input} -> ${to}`).toBeGreaterThanOrEqual(
          CHAIN_ORDER.indexOf(state),
        );
      }
    for (const state of CHAIN_ORDER.slice(CHAIN_ORDER.indexOf("ipxe")))
      for (const input of ["tftp-done", "tftp-failed"] as const)
        expect(TRANSITIONS[state][input], `${state} + ${input}`).toBe(state);
    for (const state of CHAIN_ORDER.slice(CHAIN_ORDER.indexOf("kernel"), CHAIN_ORDER.indexOf("installed")))
      for (const input of ["http-done", "http-aborted"] as const)
        expect(TRANSITIONS[state][input], `${state} + ${input}`).toBe(state);
    // Before iPXE, a TFTP end still moves the node to "tftp" (its start may have gone unattributed).
    expect(TRANSITIONS.offered["tftp-done"]).toBe("tftp");
    // A node's own requests going back mean a new boot, and are followed.
    expect(TRANSITIONS.installing.dhcp).toBe("offered");
    expect(TRANSITIONS.initrd.kernel).toBe("kernel");
  });

  it("keeps an installed node's state while it PXE-boots towards its disk, and sends it to local-boot", () => {
    for (const state of AFTER_INSTALL) {
      for (const input of ["dhcp", "tftp-start", "tftp-done", "ipxe-dhcp"] as const)
        expect(TRANSITIONS[state][input], `${state} + ${input}`).toBe(state);
      expect(TRANSITIONS[state]["script-local"]).toBe("local-boot");
      expect(TRANSITIONS[state].rearm).toBe("discovered");
      // The installer's own steps do not belong after the install.
      for (const input of ["script", "kernel", "initrd", "rootfs", "appliance-up"] as const)
        expect(TRANSITIONS[state][input], `${state} + ${input}`).toBeUndefined();
    }
    expect(TRANSITIONS["local-boot"].rebooted).toBe("rebooted");
    expect(TRANSITIONS.rebooted.verified).toBe("verified");
  });

  it("times out exactly the states that have a timeout, each with a hint", () => {
    for (const state of NODE_STATES) {
      const t = TIMEOUTS[state];
      expect(TRANSITIONS[state].timeout, state).toBe(t ? "stalled" : undefined);
      if (t) expect(t.hint.length, state).toBeGreaterThan(20);
    }
    expect(TIMEOUTS.offered?.hint).toContain("UDP 69");
    expect(TIMEOUTS.offered?.hint).toContain("VLAN");
  });

  it("lets the operator re-arm a node from any state", () => {
    for (const state of NODE_STATES) expect(TRANSITIONS[state].rearm, state).toBe("discovered");
  });
});

describe("the node table", () => {
  it("walks the whole chain, each change with the time spent in the state it left", () => {
    const { table, events, advance } = clocked();
    const steps: [NodeInput, number][] = [
      ["dhcp", 0],
      ["tftp-start", 400],
      ["tftp-done", 2000],
      ["ipxe-dhcp", 300],
      ["script", 500],
      ["kernel", 100],
      ["initrd", 3000],
      ["rootfs", 9000],
      ["appliance-up", 20_000],
      ["answer-fetched", 1000],
      ["installing", 500],
      ["installed", 60_000],
      ["script-local", 30_000],
      ["rebooted", 40_000],
      ["verified", 10_000],
    ];
    for (const [input, wait] of steps) {
      advance(wait);
      table.input(MAC, input);
    }
    const changes = events.filter((e) => e.type === "node-state");
    expect(changes.map((e) => (e.type === "node-state" ? e.state : ""))).toEqual([
      "offered",
      "tftp",
      "ipxe",
      "script",
      "kernel",
      "initrd",
      "rootfs",
      "appliance-up",
      "answer-fetched",
      "installing",
      "installed",
      "local-boot",
      "rebooted",
      "verified",
    ]);
    const ipxe = changes.find((e) => e.type === "node-state" && e.state === "ipxe");
    // 2000 ms of transfer plus 300 ms until iPXE asked: the time in "tftp".
    expect(ipxe).toMatchObject({ from: "tftp", durationMs: 2300 });
    const node = table.get(MAC);
    expect(node?.installed).toBe(true);
    expect(node?.timeline.map((t) => t.input)).toEqual(steps.map(([i]) => i));
  });

  it("records a TFTP end that arrives after iPXE's DHCP on the timeline, without going back to tftp", () => {
    const { table, events, advance } = clocked();
    table.input(MAC, "dhcp");
    table.input(MAC, "tftp-start", "undionly.kpxe");
    advance(1500);
    table.input(MAC, "ipxe-dhcp");
    advance(20);
    const detail = "undionly.kpxe: 86000 bytes in 1520 ms, 2 retransmits";
    expect(table.input(MAC, "tftp-done", detail, 86_000)).toBe("ipxe");
    table.input(MAC, "script");
    const node = table.get(MAC);
    expect(node).toMatchObject({ state: "script", bytes: 86_000 });
    expect(node?.timeline.find((t) => t.input === "tftp-done")).toMatchObject({
      from: "ipxe",
      state: "ipxe",
      detail,
    });
    expect(node?.timeline.some((t) => t.unexpected)).toBe(false);
    const states = events.flatMap((e) => (e.type === "node-state" ? [e.state] : []));
    expect(states).toEqual(["offered", "tftp", "ipxe", "script"]);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "node-progress", input: "tftp-done", bytes: 86_000, detail }),
    );
  });

  it("keeps an answer fetched or an install running when the appliance's earlier reports come late", () => {
    const { table } = clocked();
    table.input(MAC, "answer-fetched");
    expect(table.input(MAC, "appliance-up")).toBe("answer-fetched");
    table.input(MAC, "installing", "step a started");
    expect(table.input(MAC, "answer-fetched")).toBe("installing");
    expect(table.input(MAC, "http-done", "filesystem.squashfs")).toBe("installing");
    table.input(MAC, "installed");
    expect(table.input(MAC, "installing", "step z finished")).toBe("installed");
    expect(table.get(MAC)?.timeline.some((t) => t.unexpected)).toBe(false);
  });

  it("moves a node without progress to stalled, naming the state and where to look; progress revives it", () => {
    const { table, events, advance } = clocked();
    table.input(MAC, "dhcp", "DISCOVER -> OFFER");
    advance(59_000);
    table.sweep();
    expect(table.get(MAC)?.state).toBe("offered");
    advance(2_000);
    table.sweep();
    const node = table.get(MAC);
    expect(node).toMatchObject({ state: "stalled", stalledIn: "offered" });
    expect(node?.hint).toContain("is the client on another VLAN, or is UDP 69 filtered");
    expect(events.at(-1)).toMatchObject({
      type: "node-state",
      from: "offered",
      state: "stalled",
      durationMs: 61_000,
    });
    table.sweep();
    expect(events.filter((e) => e.type === "node-state" && e.state === "stalled")).toHaveLength(1);
    table.input(MAC, "tftp-start");
    expect(table.get(MAC)).toMatchObject({ state: "tftp", hint: undefined, stalledIn: undefined });
  });

  it("counts time from the last input, so a long install with steady events never stalls", () => {
    const { table, advance } = clocked();
    table.input(MAC, "installing", "step a started");
    for (let i = 0; i < 10; i++) {
      advance(1_000_000);
      table.input(MAC, "installing", `step ${i} finished`);
      table.sweep();
    }
    expect(table.get(MAC)?.state).toBe("installing");
  });

  it("lets an interactive node rest at appliance-up; an unattended one stalls there", () => {
    const { table, advance } = clocked();
    const other = "52:54:00:00:00:99";
    table.input(MAC, "appliance-up");
    table.input(other, "appliance-up");
    advance(3600_000);
    table.sweep();
    expect(table.get(MAC)?.state).toBe("stalled");
    expect(table.get(MAC)?.hint).toContain("answer");
    expect(table.get(other)?.state).toBe("appliance-up");
  });

  it("records an input out of order as unexpected and keeps the state, without throwing", () => {
    const { table, events } = clocked();
    table.input(MAC, "dhcp");
    expect(table.input(MAC, "rebooted")).toBe("offered");
    expect(table.input(MAC, "http-done", "vmlinuz")).toBe("offered");
    expect(table.input(MAC, "script-local")).toBe("offered");
    table.input(MAC, "installed");
    expect(table.input(MAC, "kernel")).toBe("installed");
    const odd = events.filter((e) => e.type === "node-unexpected");
    expect(odd.map((e) => (e.type === "node-unexpected" ? `${e.state}+${e.input}` : ""))).toEqual([
      "offered+rebooted",
      "offered+http-done",
      "offered+script-local",
      "installed+kernel",
    ]);
    expect(table.get(MAC)?.timeline.filter((t) => t.unexpected)).toHaveLength(4);
  });

  it("keeps memory per node bounded: the timeline holds the last entries only", () => {
    const { table } = clocked();
    for (let i = 0; i < 500; i++) table.input(MAC, "installing", `step ${i}`);
    const node = table.get(MAC);
    expect(node?.timeline).toHaveLength(TIMELINE_MAX);
    expect(node?.timeline.at(-1)?.detail).toBe("step 499");
  });

  it("keeps a node's transitions when progress within a state overflows the timeline", () => {
    const { table } = clocked();
    for (const input of [
      "dhcp",
      "ipxe-dhcp",
      "script",
      "kernel",
      "initrd",
      "rootfs",
      "appliance-up",
    ] as const)
      table.input(MAC, input);
    const chain = table
      .get(MAC)
      ?.timeline.filter((t) => t.state !== t.from)
      .map((t) => t.state);
    // An hour waiting for approval: lease renewals and polls, no new state.
    for (let i = 0; i < 500; i++) table.input(MAC, "appliance-up", `poll ${i}`);
    const node = table.get(MAC);
    expect(node?.timeline).toHaveLength(TIMELINE_MAX);
    expect(node?.timeline.filter((t) => t.state !== t.from).map((t) => t.state)).toEqual(chain);
    expect(node?.timeline.at(-1)?.detail).toBe("poll 499");
  });

  it("re-arming clears the boot-once flag; a restored installed node starts installed", () => {
    const { table } = clocked();
    table.touch(MAC, true);
    expect(table.get(MAC)).toMatchObject({ state: "installed", installed: true });
    table.input(MAC, "script-local");
    table.input(MAC, "rearm");
    expect(table.get(MAC)).toMatchObject({ state: "discovered", installed: false });
  });

  it("a listener that throws does not stop the table", () => {
    const { table } = clocked();
    table.subscribe(() => {
      throw new Error("broken view");
    });
    expect(table.input(MAC, "dhcp")).toBe("offered");
  });
});
