// The plain data the fleet's answers take and give: what is known of a node, where each value of
// its merged answer came from, and why a node is held.
import type { HostReport } from "../../detect/types.js";

/** What the fleet knows of one node: its name, where it booted, its DMI identity and its report. */
export interface NodeFacts {
  name: string;
  /** The rack (L2 segment, one `kvmstrap serve`) it booted in, when the server knows it. */
  rack?: string | null;
  uuid?: string | null;
  serial?: string | null;
  assetTag?: string | null;
  /** DMI system product and vendor; default: the report's firmware.system. */
  product?: string | null;
  vendor?: string | null;
  /** MAC addresses; default: the report's NICs. */
  macs?: readonly string[];
  /** The report the node's appliance captured (`kvmstrap detect --json`); null when none yet. */
  report?: HostReport | null;
}

/** A layer of the merged answer: "site", "rack r1", "role gpu", "node r1-n01". */
export interface Layer {
  kind: "site" | "rack" | "role" | "node";
  name: string;
  /** The layer file, relative to the fleet directory (site.yaml, racks/r1.yaml...). */
  file: string;
}

export const layerLabel = (l: Pick<Layer, "kind" | "name">) =>
  l.kind === "site" ? "site" : `${l.kind} ${l.name}`;

/** Where one value of a merged answer was set. */
export interface Origin {
  layer: string;
  file: string;
  line: number | null;
  column: number | null;
}

/** Why a node is held (its answer is not served): the file, line and key, and the reason. */
export interface HoldReason {
  file: string;
  line: number | null;
  column: number | null;
  /** Key path in the merged answer (network.bridges[0].uplink), or "" for the node as a whole. */
  path: string;
  /** The layer that set the key, when one did. */
  layer: string | null;
  message: string;
  ruleId: string | null;
}

export function formatHold(h: HoldReason): string {
  const where = h.line !== null ? `${h.file}:${h.line}:${h.column ?? 1}` : h.file;
  return `${where}: ${h.path ? `${h.path}: ` : ""}${h.message}`;
}
