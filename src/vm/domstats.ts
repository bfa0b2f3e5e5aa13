// `virsh domstats`: every domain's figures (state, CPU, balloon, vCPUs, block and network devices) in
// one libvirt call (virConnectGetAllDomainStats), so a metrics scrape costs one virsh run whatever the
// number of domains. The output is "Domain: 'NAME'" followed by indented "group.key=value" lines. What
// a domain reports depends on its state, its devices and libvirt's version (a shut-off domain has no
// net.* and no vcpu.N.*; older libvirt lacks cpu.user), so every field is optional here: a missing
// or unparsable field is absent, never a zero.
import type { CommandResult, CommandRunner } from "../host/commands.js";
import { classifyVirshError, LibvirtError, virshErrorMessage } from "./libvirt-error.js";
import { isPositionalName, type VirshSession } from "./virsh-session.js";

/** virDomainState, in libvirt's order (state.state=N), as Prometheus label values. */
export const DOMAIN_STATES = [
  "nostate",
  "running",
  "blocked",
  "paused",
  "shutdown",
  "shutoff",
  "crashed",
  "pmsuspended",
] as const;
export type DomainStateLabel = (typeof DOMAIN_STATES)[number];

/** One indexed device of a domain (block.N.*, net.N.*, vcpu.N.*): its keys without the prefix. */
export interface StatsDevice {
  index: number;
  /** block.N.name (vda) or net.N.name (vnet0); null for vCPUs and when not reported. */
  name: string | null;
  fields: ReadonlyMap<string, string>;
}

export interface DomainStats {
  name: string;
  /** state.state as a label; null when absent or outside libvirt's list. */
  state: DomainStateLabel | null;
  /** Every key=value of the domain as printed (state.state, cpu.time, balloon.rss...). */
  fields: ReadonlyMap<string, string>;
  blocks: StatsDevice[];
  nets: StatsDevice[];
  vcpus: StatsDevice[];
}

/** A field as a finite number, or null (absent, empty or not a number). */
export function statNumber(fields: ReadonlyMap<string, string>, key: string): number | null {
  const text = fields.get(key);
  if (text === undefined || !/^-?\d+(\.\d+)?$/.test(text)) return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

const DOMAIN_LINE = /^Domain: '(.*)'\s*$/;
const FIELD_LINE = /^\s+([\w.-]+)=(.*)$/;
const INDEXED = /^(block|net|vcpu)\.(\d+)\.(.+)$/;

function devices(fields: ReadonlyMap<string, string>, group: "block" | "net" | "vcpu"): StatsDevice[] {
  const byIndex = new Map<number, Map<string, string>>();
  for (const [key, value] of fields) {
    const m = INDEXED.exec(key);
    if (!m || m[1] !== group) continue;
    const index = Number(m[2]);
    const dev = byIndex.get(index) ?? new Map<string, string>();
    byIndex.set(index, dev);
    dev.set(m[3] as string, value);
  }
  return [...byIndex.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, f]) => ({ index, name: group === "vcpu" ? null : (f.get("name") ?? null), fields: f }));
}

function domain(name: string, fields: Map<string, string>): DomainStats {
  const code = statNumber(fields, "state.state");
  return {
    name,
    state: code !== null ? (DOMAIN_STATES[code] ?? null) : null,
    fields,
    blocks: devices(fields, "block"),
    nets: devices(fields, "net"),
    vcpus: devices(fields, "vcpu"),
  };
}

/** Parses `virsh domstats` output; lines that fit neither shape are skipped. */
export function parseDomstats(output: string): DomainStats[] {
  const out: DomainStats[] = [];
  let current: { name: string; fields: Map<string, string> } | null = null;
  const flush = () => {
    if (current) out.push(domain(current.name, current.fields));
    current = null;
  };
  for (const line of output.split("\n")) {
    const d = DOMAIN_LINE.exec(line);
    if (d) {
      flush();
      current = { name: d[1] as string, fields: new Map() };
      continue;
    }
    const f = FIELD_LINE.exec(line);
    if (f && current) current.fields.set(f[1] as string, f[2] as string);
  }
  flush();
  return out;
}

export interface DomstatsOptions {
  virsh?: string;
  /** A scrape must answer: libvirtd stuck on one domain's monitor must not hang it. */
  timeoutMs?: number;
  /** About 2.5 KB per domain with two disks and a NIC: 16 MiB is thousands of domains. */
  maxBytes?: number;
  /** Also the vcpu group (DOMSTATS_VCPU_GROUP): per-vCPU times and the vCPU counts. */
  vcpu?: boolean;
}

/**
 * The stats groups a pass asks for. Each costs libvirtd work per domain, and most ask the domain's
 * qemu through its monitor: that, not virsh or the rendering, is most of a scrape's CPU on a busy
 * host. These are the figures every scrape needs: state, the domain's CPU time, memory and balloon,
 * network and block I/O. The others (perf, iothread, dirtyrate, vm, memory bandwidth) took about
 * 20% of a pass over 20 domains here for figures nobody reads.
 */
export const DOMSTATS_GROUPS = ["--state", "--cpu-total", "--balloon", "--interface", "--block"];

/**
 * Per-vCPU time, wait and delay, and the vCPU counts: an option, as it asks each running domain's
 * qemu one more monitor query (query-stats, whose KVM counters per vCPU libvirt fetches and this
 * exporter does not show): 13% more scrape time on 20 idle domains here (bench:vm).
 */
export const DOMSTATS_VCPU_GROUP = "--vcpu";

export const domstatsGroups = (options: Pick<DomstatsOptions, "vcpu">): string[] =>
  options.vcpu ? [...DOMSTATS_GROUPS, DOMSTATS_VCPU_GROUP] : DOMSTATS_GROUPS;

export const DOMSTATS_DEFAULTS = { timeoutMs: 10_000, maxBytes: 16 * 2 ** 20 } as const;

/** One `virsh -c URI domstats GROUPS` run (every domain), parsed. */
export async function readDomstats(
  runner: CommandRunner,
  uri: string,
  options: DomstatsOptions = {},
): Promise<DomainStats[]> {
  const virsh = options.virsh ?? "virsh";
  const limits = limitsOf(options);
  const argv = ["-c", uri, "domstats", ...domstatsGroups(options)];
  const command = [virsh, ...argv];
  let r: CommandResult;
  try {
    r = await runner.run(virsh, argv, limits);
  } catch (e) {
    throw new LibvirtError("other", `could not run virsh: ${(e as Error).message}`, command);
  }
  return parseReply(r, command, limits);
}

/** What the passes ask of a kept virsh (a VirshSession). */
export type DomstatsSession = Pick<VirshSession, "run">;

/** The same pass as readDomstats, asked of a long-lived virsh (its connection kept between scrapes). */
export async function readDomstatsOver(
  session: DomstatsSession,
  options: Omit<DomstatsOptions, "virsh"> = {},
): Promise<DomainStats[]> {
  const limits = limitsOf(options);
  const words = ["domstats", ...domstatsGroups(options)];
  return parseReply(await session.run(words, limits), ["virsh", ...words], limits);
}

/**
 * The same pass with the domains split over the sessions given, each session asked for its share at
 * the same time. Each domain is still asked once per pass; the split is for time: libvirtd answers
 * one domstats call domain after domain, and most of a domain's time is spent waiting for its own
 * qemu to answer monitor queries (block stats, block node capacity, balloon), which other qemus and
 * other libvirtd workers can do meanwhile. Measured on 20 running domains here: 74.5 ms in one call,
 * 47 ms over 3-4 (bench:vm). The names come from `list --all --name` on the first session; when a
 * domain goes away between the list and its share (virsh fails on a name it cannot find) the pass
 * is made once more on a new list. Names virsh's shell would not take as plain words, or fewer than
 * two domains, give the one-call pass.
 */
export async function readDomstatsSharded(
  sessions: readonly DomstatsSession[],
  options: Omit<DomstatsOptions, "virsh"> = {},
): Promise<DomainStats[]> {
  const first = sessions[0];
  if (!first) throw new Error("readDomstatsSharded needs at least one virsh session");
  const limits = limitsOf(options);
  const groups = domstatsGroups(options);
  for (let attempt = 0; ; attempt++) {
    const listWords = ["list", "--all", "--name"];
    const listed = await first.run(listWords, limits);
    if (listed.exitCode !== 0 || listed.timedOut || listed.overflowed) {
      parseReply(listed, ["virsh", ...listWords], limits); // throws the reason
    }
    const names = listed.stdout.split("\n").filter((n) => n.trim() !== "");
    const shards = Math.min(sessions.length, names.length);
    if (shards < 2 || !names.every(isPositionalName)) return readDomstatsOver(first, options);
    const shares = Array.from({ length: shards }, (_, i) => names.filter((_, j) => j % shards === i));
    try {
      const parts = await Promise.all(
        shares.map(async (share, i) => {
          const words = ["domstats", ...groups, ...share];
          const session = sessions[i] as DomstatsSession;
          return parseReply(await session.run(words, limits), ["virsh", "domstats", ...groups], limits);
        }),
      );
      const byName = new Map(parts.flat().map((d) => [d.name, d]));
      return names.flatMap((n) => byName.get(n) ?? []);
    } catch (e) {
      if (attempt === 0 && e instanceof LibvirtError && e.code === "no-domain") continue;
      throw e;
    }
  }
}

function limitsOf(options: DomstatsOptions) {
  return {
    timeoutMs: options.timeoutMs ?? DOMSTATS_DEFAULTS.timeoutMs,
    maxBytes: options.maxBytes ?? DOMSTATS_DEFAULTS.maxBytes,
  };
}

function parseReply(
  r: CommandResult,
  command: string[],
  { timeoutMs, maxBytes }: { timeoutMs: number; maxBytes: number },
): DomainStats[] {
  if (r.timedOut) {
    throw new LibvirtError("timeout", `virsh domstats gave no answer within ${timeoutMs} ms`, command);
  }
  // A runner that does not enforce the bound is held to it here.
  if (r.overflowed || r.stdout.length > maxBytes) {
    throw new LibvirtError("other", `virsh domstats printed more than ${maxBytes} bytes`, command);
  }
  if (r.exitCode === undefined) {
    throw new LibvirtError("other", `could not run ${command[0]} (is libvirt-clients installed?)`, command);
  }
  if (r.exitCode !== 0) {
    const code = classifyVirshError(r.stderr);
    throw new LibvirtError(code, virshErrorMessage(r.stderr), command, r.stderr, r.exitCode);
  }
  return parseDomstats(r.stdout);
}
