// Which node an incoming boot or report is. The DMI system UUID and serial come first, MACs second
// (a NIC swap must not orphan a node). Vendors ship placeholder UUIDs and serials ("03000200-0400-
// 0500-0006-000700080009", "To Be Filled By O.E.M."), so those count as unknown, never as a match:
// two machines that share one must stay two nodes. A report that contradicts what a node is known
// as (its UUID changed, a UUID another machine already has) is never merged silently: it is
// matched only when a MAC backs it up, and flagged either way for the operator (and held).
// Pure: the store hands in the candidate nodes and applies the outcome in one transaction.

export interface IdentityInput {
  uuid?: string | null;
  serial?: string | null;
  asset?: string | null;
  macs: readonly string[];
  /** The MACs are the machine's whole set (a detect report), not just the one it booted from. */
  complete?: boolean;
}

export interface KnownNode {
  id: number;
  uuid: string | null;
  serial: string | null;
  macs: readonly string[];
}

export type FlagKind =
  | "uuid-changed" // same serial (and a MAC), another UUID: a motherboard swap?
  | "serial-changed" // same UUID (and a MAC), another serial
  | "duplicate-uuid" // another machine already has this UUID
  | "duplicate-serial" // another machine already has this serial
  | "mac-moved" // a MAC known on another machine is on this one now
  | "ambiguous"; // several nodes fit equally

export interface IdentityFlag {
  kind: FlagKind;
  /** The other node involved, if any. */
  other?: number;
  detail: string;
  /** Whether the node must be held until the operator looks (a contradiction, not a note). */
  hold: boolean;
}

export interface Resolution {
  /** The node it is, or undefined for a new one. */
  nodeId: number | undefined;
  /** Identity to record (normalised; placeholders as null). */
  uuid: string | null;
  serial: string | null;
  asset: string | null;
  /** MACs to attach to the node, and those to take from other nodes. */
  macs: string[];
  /** MACs to detach from the node (with a complete set: NICs no longer in it). */
  dropMacs: string[];
  flags: IdentityFlag[];
}

/** UUIDs that identify no machine: all zeros or ones, and the well-known firmware defaults. */
const PLACEHOLDER_UUIDS = new Set([
  "00000000-0000-0000-0000-000000000000",
  "ffffffff-ffff-ffff-ffff-ffffffffffff",
  "03000200-0400-0500-0006-000700080009",
  "00020003-0004-0005-0006-000700080009", // the same default read with the other byte order
  "12345678-1234-5678-90ab-cddeefaabbcc",
]);

/** Serials and asset tags that boards ship unset (compared lower case, spaces squeezed). */
const PLACEHOLDER_STRINGS = new Set([
  "",
  "0",
  "none",
  "n/a",
  "na",
  "null",
  "unknown",
  "not specified",
  "not applicable",
  "not available",
  "default string",
  "to be filled by o.e.m.",
  "to be filled by oem",
  "system serial number",
  "chassis serial number",
  "base board serial number",
  "serial number",
  "0123456789",
  "123456789",
  "1234567890",
  "xxxxxxxx",
  "o.e.m.",
  "oem",
  "empty",
]);

export function normalUuid(u: string | null | undefined): string | null {
  if (!u) return null;
  const v = u.trim().toLowerCase();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v)) return null;
  if (PLACEHOLDER_UUIDS.has(v)) return null;
  // A UUID of one repeated digit (11111111-1111-...) is a filler too.
  if (new Set(v.replaceAll("-", "")).size === 1) return null;
  return v;
}

export function normalSerial(s: string | null | undefined): string | null {
  if (s == null) return null;
  const v = s.trim().replace(/\s+/g, " ");
  const low = v.toLowerCase();
  if (PLACEHOLDER_STRINGS.has(low)) return null;
  if (/^[0x\-. ]+$/.test(low) || /^(.)\1+$/.test(low)) return null; // 00000000, ----, FFFFFFFF
  return v;
}

/** Lower case, colon-separated; null for what no NIC has (all zeros, broadcast, multicast). */
export function normalMac(m: string): string | null {
  const hex = m.trim().toLowerCase().replace(/[-:.]/g, "");
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  if (/^0+$/.test(hex) || /^f+$/.test(hex)) return null;
  if (Number.parseInt(hex.slice(0, 2), 16) & 1) return null;
  return hex.match(/../g)?.join(":") ?? null;
}

export function resolveIdentity(input: IdentityInput, known: readonly KnownNode[]): Resolution {
  const uuid = normalUuid(input.uuid);
  const serial = normalSerial(input.serial);
  const asset = normalSerial(input.asset);
  const macs = [...new Set(input.macs.map(normalMac).filter((m): m is string => m !== null))];
  const macSet = new Set(macs);
  const flags: IdentityFlag[] = [];
  const sharesMac = (n: KnownNode) => n.macs.some((m) => macSet.has(m));
  // Both sides known and different; an unknown side contradicts nothing.
  const uuidClash = (n: KnownNode) => uuid !== null && n.uuid !== null && n.uuid !== uuid;
  const serialClash = (n: KnownNode) => serial !== null && n.serial !== null && n.serial !== serial;
  const uuidHit = (n: KnownNode) => uuid !== null && n.uuid === uuid;
  const serialHit = (n: KnownNode) => serial !== null && n.serial === serial;

  let match: KnownNode | undefined;
  // 1. Nodes that one strong key names and neither contradicts.
  const clean = known.filter((n) => (uuidHit(n) || serialHit(n)) && !uuidClash(n) && !serialClash(n));
  if (clean.length === 1) match = clean[0];
  else if (clean.length > 1) {
    // Both keys hit beats one; then a shared MAC; else nobody is guessed.
    const both = clean.filter((n) => uuidHit(n) && serialHit(n));
    const byMac = clean.filter(sharesMac);
    match = both.length === 1 ? both[0] : byMac.length === 1 ? byMac[0] : undefined;
    if (!match)
      flags.push({
        kind: "ambiguous",
        detail: `nodes ${clean.map((n) => n.id).join(", ")} all fit uuid ${uuid ?? "?"} serial ${serial ?? "?"}`,
        hold: true,
      });
  }
  // 2. A strong key hit that the other key contradicts: the same machine only if a MAC backs it.
  if (!match && flags.length === 0) {
    for (const n of known) {
      if (uuidHit(n) && serialClash(n)) {
        if (sharesMac(n) && !match) {
          match = n;
          flags.push({
            kind: "serial-changed",
            other: n.id,
            detail: `serial ${n.serial} -> ${serial} on uuid ${uuid} (same NIC)`,
            hold: true,
          });
        } else
          flags.push({
            kind: "duplicate-uuid",
            other: n.id,
            detail: `uuid ${uuid} already belongs to node ${n.id} (serial ${n.serial}); this machine's serial is ${serial}`,
            hold: true,
          });
      } else if (serialHit(n) && uuidClash(n)) {
        if (sharesMac(n) && !match) {
          match = n;
          flags.push({
            kind: "uuid-changed",
            other: n.id,
            detail: `uuid ${n.uuid} -> ${uuid} on serial ${serial} (same NIC): a motherboard swap?`,
            hold: true,
          });
        } else
          flags.push({
            kind: "duplicate-serial",
            other: n.id,
            detail: `serial ${serial} already belongs to node ${n.id} (uuid ${n.uuid}); this machine's uuid is ${uuid}: a motherboard swap, or two machines with one serial`,
            hold: true,
          });
      }
    }
    // A match found through a MAC makes the other flags about that node moot.
    if (match) {
      const m = match;
      for (let i = flags.length - 1; i >= 0; i--)
        if (flags[i]?.other !== m.id && flags[i]?.kind.startsWith("duplicate")) flags.splice(i, 1);
    }
  }
  // 3. No strong key decided: MACs, but never onto a node whose own strong identity contradicts.
  if (!match && !flags.some((f) => f.hold)) {
    const fits = known.filter(sharesMac).filter((n) => !uuidClash(n) && !serialClash(n));
    if (fits.length === 1) match = fits[0];
    else if (fits.length > 1) {
      const count = (n: KnownNode) => n.macs.filter((m) => macSet.has(m)).length;
      const sorted = [...fits].sort((a, b) => count(b) - count(a) || a.id - b.id);
      match = sorted[0];
      flags.push({
        kind: "ambiguous",
        other: sorted[1]?.id,
        detail: `the MACs ${macs.join(", ")} are on nodes ${fits.map((n) => n.id).join(", ")}; taken as node ${match?.id}`,
        hold: true,
      });
    }
  }
  // MACs another node has: they move here (a NIC moved between machines), noted.
  const id = match?.id;
  for (const n of known) {
    if (n.id === id) continue;
    const moved = n.macs.filter((m) => macSet.has(m));
    if (moved.length > 0)
      flags.push({
        kind: "mac-moved",
        other: n.id,
        detail: `${moved.join(", ")} moved from node ${n.id}`,
        hold: false,
      });
  }
  const dropMacs = match && input.complete ? match.macs.filter((m) => !macSet.has(m)) : [];
  return {
    nodeId: id,
    uuid: uuid ?? match?.uuid ?? null,
    serial: serial ?? match?.serial ?? null,
    asset,
    macs,
    dropMacs,
    flags,
  };
}
