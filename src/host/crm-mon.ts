// A reader of pacemaker's `crm_mon --output-as=xml` (pacemaker 2.1, api-version 2.x): quorum, the
// nodes with their online/unclean state, where each resource runs, and the fencing history. It knows
// the format only; what a node or resource means to kvmstrap is decided by its callers. Input is the
// tool's output, bounded in size; anything the format does not say is left out, never guessed.
import { attribute, child, children, parseXmlTree, type XmlNode } from "../core/xml-tree.js";

/** The command whose output this reads: one snapshot, with the full fencing history. */
export const CRM_MON_ARGV = ["crm_mon", "--one-shot", "--output-as=xml", "--fence-history=3"] as const;
export const CRM_MON_MAX_BYTES = 4 * 1024 * 1024;

export type CrmNode = {
  name: string;
  id: string;
  online: boolean;
  standby: boolean;
  /** Lost without a confirmed fence: pacemaker will fence it before recovering its resources. */
  unclean: boolean;
  /** Leaving the cluster cleanly. */
  shutdown: boolean;
  isDc: boolean;
};
export type CrmResource = {
  id: string;
  /** class:provider:type, e.g. ocf:heartbeat:VirtualDomain or stonith:fence_ipmilan. */
  agent: string;
  role: string;
  active: boolean;
  failed: boolean;
  managed: boolean;
  /** Nodes it runs on (more than one only for clones, or a resource pacemaker found active twice). */
  nodes: string[];
};
export type CrmFenceEvent = {
  action: string;
  target: string;
  /** The node that carried it out (fenced's delegate), when known. */
  delegate: string | null;
  /** The node that asked for it. */
  origin: string | null;
  status: string;
  exitReason: string | null;
  /** As crm_mon prints it, and as a Date where it parses (null otherwise). */
  completed: string | null;
  completedAt: Date | null;
};
export type CrmStatus = {
  /** null when there is no DC yet (the cluster is forming), so quorum is not known. */
  quorate: boolean | null;
  dc: string | null;
  stonithEnabled: boolean | null;
  nodes: CrmNode[];
  resources: CrmResource[];
  fencing: CrmFenceEvent[];
};

type Node = XmlNode;
const all = children;
const one = child;
const str = attribute;
const bool = (n: Node | undefined, key: string): boolean | null => {
  const v = str(n, key);
  return v === "true" ? true : v === "false" ? false : null;
};

/** crm_mon prints times as "2026-12-06 12:01:02Z" (fence history, 2.1), "... +01:00", or
 *  "Sun Dec  6 12:01:02 2026" (local time, in its summary). */
export function parseCrmTime(s: string): Date | null {
  const iso = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(?:\.(\d+))?(?: ?(Z|[+-]\d{2}):?(\d{2})?)?$/.exec(
    s.trim(),
  );
  const d = iso
    ? new Date(
        `${iso[1]}T${iso[2]}${iso[3] ? `.${iso[3].slice(0, 3)}` : ""}${iso[4] && iso[4] !== "Z" ? `${iso[4]}:${iso[5] ?? "00"}` : "Z"}`,
      )
    : new Date(s.replace(/\s+/g, " "));
  return Number.isNaN(d.getTime()) ? null : d;
}

function resources(n: Node | undefined, out: CrmResource[]): CrmResource[] {
  for (const r of all(n, "resource")) {
    out.push({
      id: str(r, "id") ?? "",
      agent: str(r, "resource_agent") ?? "",
      role: str(r, "role") ?? "",
      active: bool(r, "active") ?? false,
      failed: bool(r, "failed") ?? false,
      managed: bool(r, "managed") ?? true,
      nodes: all(r, "node").map((x) => str(x, "name") ?? ""),
    });
  }
  // Groups, clones and bundles hold their members' <resource> elements.
  for (const tag of ["group", "clone", "bundle", "replica"]) for (const g of all(n, tag)) resources(g, out);
  return out;
}

export function parseCrmMon(xml: string): CrmStatus {
  if (Buffer.byteLength(xml) > CRM_MON_MAX_BYTES)
    throw new Error(`crm_mon output larger than ${CRM_MON_MAX_BYTES} bytes`);
  const doc = parseXmlTree(xml);
  const root = one(doc, "pacemaker-result") ?? one(doc, "crm_mon");
  if (!root) throw new Error("not crm_mon XML output (no <pacemaker-result> element)");
  const status = one(root, "status");
  const code = str(status, "code");
  if (code !== null && code !== "0")
    throw new Error(`crm_mon failed: ${str(status, "message") ?? `code ${code}`}`);
  const summary = one(root, "summary");
  const dc = one(summary, "current_dc");
  const dcPresent = bool(dc, "present") === true;
  return {
    quorate: dcPresent ? bool(dc, "with_quorum") : null,
    dc: dcPresent ? str(dc, "name") : null,
    stonithEnabled: bool(one(summary, "cluster_options"), "stonith-enabled"),
    nodes: all(one(root, "nodes"), "node").map((n) => ({
      name: str(n, "name") ?? "",
      id: str(n, "id") ?? "",
      online: bool(n, "online") ?? false,
      standby: bool(n, "standby") ?? false,
      unclean: bool(n, "unclean") ?? false,
      shutdown: bool(n, "shutdown") ?? false,
      isDc: bool(n, "is_dc") ?? false,
    })),
    resources: resources(one(root, "resources"), []),
    fencing: all(one(root, "fence_history"), "fence_event").map((f) => {
      const completed = str(f, "completed");
      return {
        action: str(f, "action") ?? "",
        target: str(f, "target") ?? "",
        delegate: str(f, "delegate"),
        origin: str(f, "origin"),
        status: str(f, "status") ?? "",
        exitReason: str(f, "exit-reason"),
        completed,
        completedAt: completed ? parseCrmTime(completed) : null,
      };
    }),
  };
}
