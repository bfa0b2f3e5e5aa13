// One human line per server event (the server's output when it is not on a terminal, and
// `serve status --follow`). ASCII only: it must read the same on a serial console.
import type { ServeEvent } from "./node-table.js";

export const seconds = (ms: number) =>
  ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

const clock = (iso: string) => iso.slice(11, 19);

export function formatServeEvent(e: ServeEvent): string | null {
  switch (e.type) {
    case "listening":
      return `${clock(e.time)} listening: HTTP ${e.http}, TFTP ${e.tftp}, DHCP ${e.dhcp}, netboot ${e.netboot ?? "(none)"}; dashboard ${e.http}/ui/`;
    case "node-state":
      if (e.state === "stalled")
        return `${clock(e.time)} ${e.mac} STALLED in ${e.from} after ${seconds(e.durationMs)}: ${e.hint ?? e.detail ?? ""}`;
      return `${clock(e.time)} ${e.mac} ${e.from} -> ${e.state} (${seconds(e.durationMs)} in ${e.from})${e.detail ? `: ${e.detail}` : ""}`;
    case "node-progress":
      return `${clock(e.time)} ${e.mac} ${e.state}: ${e.detail ?? e.input}`;
    case "node-unexpected":
      return `${clock(e.time)} ${e.mac} unexpected ${e.input} in state ${e.state} (recorded, state kept)${e.detail ? `: ${e.detail}` : ""}`;
    case "transfer":
      return `${clock(e.time)} tftp ${e.client} ${e.file}: ${e.outcome}, ${formatBytes(e.bytes)} in ${seconds(e.durationMs)}${e.retransmits ? `, ${e.retransmits} retransmits` : ""}${e.detail ? ` (${e.detail})` : ""}`;
    case "warning":
      return `${clock(e.time)} warning: ${e.message}`;
    case "fleet-node":
      return `${clock(e.time)} fleet node ${e.node.id}${e.node.name ? ` (${e.node.name})` : ""}: ${e.node.state}, ${e.node.approved ? "approved" : "not approved"}${e.node.held ? `, held: ${e.node.holds.map((h) => h.reason).join("; ")}` : ""}`;
    case "rollout": {
      const r = e.rollout;
      return `${clock(e.time)} rollout ${r.id}${r.name ? ` (${r.name})` : ""}: ${r.state}, wave ${r.wave}${r.why ? `; ${r.why}` : ""}`;
    }
    case "stopped":
      return `${clock(e.time)} stopped`;
  }
}
