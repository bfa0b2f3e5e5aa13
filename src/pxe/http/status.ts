// A node as `GET /v1/status` shows it: its state, timeline and counters, never a token or answer.
import type { NodeRecord } from "../node-table.js";
import type { NodeEntry } from "../nodes-file.js";

export function nodeStatus(n: NodeRecord, entry: NodeEntry | undefined, now = Date.now()) {
  const iso = (t: number) => new Date(t).toISOString();
  return {
    mac: n.mac,
    ...(entry?.name ? { name: entry.name } : {}),
    known: entry !== undefined,
    install: entry?.install ?? false,
    state: n.state,
    since: iso(n.stateSince),
    inStateMs: now - n.stateSince,
    elapsedMs: now - n.firstSeen,
    lastEvent: n.lastEvent,
    bytes: n.bytes,
    installed: n.installed,
    ...(n.stalledIn ? { stalledIn: n.stalledIn, hint: n.hint } : {}),
    timeline: n.timeline.map((t) => ({
      time: iso(t.time),
      input: t.input,
      from: t.from,
      state: t.state,
      durationMs: t.durationMs,
      ...(t.detail ? { detail: t.detail } : {}),
      ...(t.unexpected ? { unexpected: true } : {}),
    })),
  };
}

export type NodeStatus = ReturnType<typeof nodeStatus>;
