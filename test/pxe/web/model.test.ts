// The dashboard's model against the real node table: whatever inputs the table is fed, the page's
// copy built from GET /v1/status's body plus the events the table published must equal a fresh
// status, including stalls with their hint, unexpected inputs, boot once and re-arm, and events that
// arrive while a status is loading (applied once, not twice).
import { describe, expect, it } from "vitest";
import { nodeStatus } from "../../../src/pxe/http/status.js";
import { TIMEOUTS } from "../../../src/pxe/node-state.js";
import { NodeTable, type ServeEvent, TIMELINE_MAX } from "../../../src/pxe/node-table.js";
import { FleetModel, failedIn, matches, type StatusBody, stateLabel } from "../../../src/pxe/web/model.js";

const A = "52:54:00:00:00:0a";
const B = "52:54:00:00:00:0b";

function rig() {
  let t = Date.parse("2026-12-06T00:00:00Z");
  const table = new NodeTable({ now: () => t, timeouts: { kernel: 5 } });
  const events: ServeEvent[] = [];
  table.subscribe((e) => events.push(e));
  const status = (): StatusBody => ({
    version: "test",
    server: {},
    nodes: table.all().map((n) => nodeStatus(n, undefined, t)),
  });
  return {
    table,
    events,
    status,
    advance: (ms: number) => {
      t += ms;
    },
    now: () => t,
  };
}

/** The model's view of a node, in the terms of a fresh status (what a reload would show). */
const asStatus = (m: FleetModel) =>
  [...m.nodes.values()].map((n) => ({
    mac: n.mac,
    state: n.state,
    since: new Date(n.since).toISOString(),
    lastEvent: n.lastEvent,
    bytes: n.bytes,
    installed: n.installed,
    stalledIn: n.stalledIn,
    hint: n.hint,
    timeline: n.timeline.map((x) => ({ ...x, time: new Date(x.time).toISOString() })),
  }));
const fromStatus = (s: StatusBody) =>
  s.nodes.map((n) => ({
    mac: n.mac,
    state: n.state,
    since: n.since,
    lastEvent: n.lastEvent,
    bytes: n.bytes,
    installed: n.installed,
    stalledIn: n.stalledIn,
    hint: n.hint,
    timeline: n.timeline.map((x) => ({ detail: undefined, unexpected: undefined, ...x })),
  }));

describe("the dashboard's model", () => {
  it("status plus the events since equals a fresh status: states, timelines, bytes, stalls, boot once", () => {
    const r = rig();
    r.table.input(A, "script", "node-a, interactive");
    const m = new FleetModel();
    m.load(r.status(), r.now());
    const from = r.events.length;
    r.advance(1200);
    r.table.input(A, "kernel", "GET /netboot/vmlinuz");
    r.advance(300);
    r.table.input(A, "http-done", "vmlinuz: 0.1 MiB sent", 70_000);
    r.table.input(B, "dhcp", "offer"); // a node the status did not have
    r.advance(6000);
    r.table.sweep(); // A stalls in kernel (5 s here)
    r.table.input(A, "installed", "from a stalled node: unexpected? no, the boot chain allows it");
    r.table.input(A, "rearm", "by the operator");
    r.table.input(B, "verified", "not allowed from offered: recorded, state kept");
    for (const e of r.events.slice(from)) m.apply(e);
    expect(asStatus(m)).toEqual(fromStatus(r.status()));
    expect(m.unnamed).toBe(1);
  });

  it("a stalled node carries the state it stopped in and the hint; a failed one the state it failed in", () => {
    const r = rig();
    const m = new FleetModel();
    m.load(r.status(), r.now());
    const from = r.events.length;
    r.table.input(A, "kernel");
    r.table.input(B, "installing", "step storage.pools started");
    r.advance(5000);
    r.table.sweep();
    r.advance(1);
    r.table.input(B, "failed", "apply failed: disk busy");
    for (const e of r.events.slice(from)) m.apply(e);
    const a = m.nodes.get(A);
    const b = m.nodes.get(B);
    if (!a || !b) throw new Error("nodes missing");
    expect(stateLabel(a)).toBe("STALLED in kernel");
    expect(a.hint).toBe(TIMEOUTS.kernel?.hint);
    expect(stateLabel(b)).toBe("FAILED in installing");
    expect(failedIn(b)).toBe("installing");
    expect(m.attention().map((n) => n.mac)).toEqual([B, A]); // most recent first
    expect(m.counts()).toEqual([
      ["failed", 1],
      ["stalled", 1],
    ]);
    expect(matches(a, "stalled in kern")).toBe(true);
    expect(matches(a, "KERNEL")).toBe(true);
    expect(matches(b, "disk busy")).toBe(true);
    expect(matches(b, A)).toBe(false);
  });

  it("events that arrived while the status was loading are applied once: those it holds are skipped", () => {
    const r = rig();
    r.table.input(A, "script");
    const from = r.events.length;
    r.advance(10);
    r.table.input(A, "kernel");
    const snapshot = r.status(); // taken after "kernel"...
    r.advance(10);
    r.table.input(A, "initrd"); // ...the stream delivered both
    const m = new FleetModel();
    m.load(snapshot, r.now());
    for (const e of r.events.slice(from)) m.apply(e, true);
    expect(asStatus(m)).toEqual(fromStatus(r.status()));
    expect(m.nodes.get(A)?.timeline.map((t) => t.input)).toEqual(["script", "kernel", "initrd"]);
  });

  it("keeps at most the table's timeline length per node", () => {
    const r = rig();
    const m = new FleetModel();
    m.load(r.status(), r.now());
    for (let i = 0; i < TIMELINE_MAX + 20; i++) {
      r.advance(1);
      r.table.input(A, i % 2 ? "kernel" : "initrd");
    }
    for (const e of r.events) m.apply(e);
    expect(m.nodes.get(A)?.timeline).toHaveLength(TIMELINE_MAX);
    expect(asStatus(m)).toEqual(fromStatus(r.status()));
  });

  it("shows times by the server's clock: the skew is taken from the status", () => {
    const r = rig();
    r.table.input(A, "script");
    r.advance(4000);
    const m = new FleetModel();
    const local = r.now() - 3_600_000; // this browser's clock is an hour behind
    m.load(r.status(), local);
    expect(m.now(local) - (m.nodes.get(A)?.since ?? 0)).toBe(4000);
  });
});
