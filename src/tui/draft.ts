// The answer being built: an AnswerInput, the very object the unattended path reads from YAML. The
// screens edit one section each through these helpers; parsing and validation stay in answer/.
import path from "node:path";
import { stringify } from "yaml";
import { matchDisks, matchNics, matchPci } from "../answer/match.js";
import { type Answer, type AnswerInput, answerSchema } from "../answer/schema.js";
import { writeFileAtomic } from "../core/atomic-write.js";
import type { HostReport } from "../detect/types.js";

export type Draft = AnswerInput;
export type BridgeInput = NonNullable<NonNullable<Draft["network"]>["bridges"]>[number];
export type PoolInput = NonNullable<NonNullable<Draft["storage"]>["pools"]>[number];
export type SriovInput = NonNullable<Draft["sriov"]>[number];
export type VlanInput = NonNullable<NonNullable<Draft["network"]>["vlans"]>[number];
export type BondInput = NonNullable<NonNullable<Draft["network"]>["bonds"]>[number];
export type VmInput = NonNullable<Draft["vms"]>[number];

export const emptyDraft = (): Draft => ({ version: 1 });

/** A loaded answer file as the starting draft (a deep copy: the screens never share objects). */
export const draftFrom = (answer: Answer | null): Draft =>
  answer ? (structuredClone(answer) as Draft) : emptyDraft();

export const bridgeOf = (d: Draft): BridgeInput | null => d.network?.bridges?.[0] ?? null;

/** Sets (or drops) the first bridge; VLANs on it follow a rename and go with it when it goes. */
export function withBridge(d: Draft, b: BridgeInput | null): Draft {
  const rest = d.network?.bridges?.slice(1) ?? [];
  const bridges = b ? [b, ...rest] : rest;
  const old = bridgeOf(d)?.name;
  let vlans = d.network?.vlans;
  if (old && vlans && old !== b?.name)
    vlans = b
      ? vlans.map((v) => (v.link === old ? { ...v, link: b.name } : v))
      : vlans.filter((v) => v.link !== old);
  return { ...d, network: { ...d.network, bridges, ...(vlans ? { vlans } : {}) } };
}

export const withVlans = (d: Draft, vlans: VlanInput[]): Draft => ({
  ...d,
  network: { ...d.network, vlans },
});

export const withBonds = (d: Draft, bonds: BondInput[]): Draft => ({
  ...d,
  network: { ...d.network, bonds },
});

export const withVms = (d: Draft, vms: VmInput[]): Draft => ({ ...d, vms });

export const poolOf = (d: Draft): PoolInput | null => d.storage?.pools?.[0] ?? null;

export function withPool(d: Draft, p: PoolInput | null): Draft {
  const rest = d.storage?.pools?.slice(1) ?? [];
  return { ...d, storage: { ...d.storage, pools: p ? [p, ...rest] : rest } };
}

/** PCI addresses (or names) of the NICs the bridge uplink and the SR-IOV entries pick on this host. */
export function pickedNic(rule: BridgeInput["uplink"], report: HostReport): string | null {
  if (!rule) return null;
  const n = matchNics(rule, report).chosen[0];
  return n ? (n.pciAddress ?? n.name) : null;
}

export function sriovCounts(d: Draft, report: HostReport): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of d.sriov ?? []) {
    const key = pickedNic(s.pf, report);
    if (key) out.set(key, s.numVfs);
  }
  return out;
}

export function passthroughPicked(d: Draft, report: HostReport): Set<string> {
  const out = new Set<string>();
  for (const p of d.passthrough ?? []) for (const x of matchPci(p.device, report).chosen) out.add(x.address);
  return out;
}

export function poolDisks(p: PoolInput | null, report: HostReport): Set<string> {
  const out = new Set<string>();
  for (const rule of p?.disks ?? []) for (const x of matchDisks(rule, report).chosen) out.add(x.name);
  return out;
}

export type Parsed = { ok: true; answer: Answer } | { ok: false; issues: string[] };

export function parseDraft(d: Draft): Parsed {
  const r = answerSchema.safeParse(d);
  if (r.success) return { ok: true, answer: r.data };
  return { ok: false, issues: r.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`) };
}

const HEADER =
  "# kvmstrap answer file, saved by the installer (kvmstrap tui).\n# Check: kvmstrap answer validate FILE; run unattended: kvmstrap apply FILE\n";

export const draftYaml = (d: Draft): string => HEADER + stringify(d, { lineWidth: 0 });

/** Writes the answer file atomically (a temporary file in the same directory, then rename). */
export async function saveDraft(file: string, d: Draft): Promise<string> {
  const target = path.resolve(file);
  await writeFileAtomic(target, draftYaml(d), 0o600);
  return target;
}
