// kvmstrap's own figures for `kvmstrap metrics`: the last apply run (its journal), the last verify
// result (verify.json), VFs per SR-IOV physical function and free hugepages per NUMA node (sysfs
// through the host port). Each source is read on every scrape (only which PCI devices are physical
// functions is kept, while the device list stays the same) and fails alone: a corrupt journal
// drops the apply series and says so (source up 0), it never fails the scrape.
import { readFile, stat } from "node:fs/promises";
import { Journal } from "../apply/journal.js";
import type { HostFs } from "../host/fs.js";
import { type VerifyResult, verifyResultSchema } from "./verify-result.js";

export interface LastApply {
  runId: string;
  phase: string;
  /** finishedAt, or the last journal write of a run not finished. */
  time: number;
}
export interface LastVerify {
  status: VerifyResult["status"];
  time: number;
  counts: VerifyResult["counts"];
}
export interface SriovPf {
  pf: string;
  numVfs: number;
  totalVfs: number;
}
export interface NodeHugepages {
  node: string;
  /** As sysfs names it: 2048kB, 1048576kB. */
  size: string;
  total: number;
  free: number;
}

export interface HostFigures {
  apply: LastApply | null;
  verify: LastVerify | null;
  sriov: SriovPf[];
  hugepages: NodeHugepages[];
  /** Sources that could not be read this scrape, with why (for kvmstrap_source_up and the log). */
  failed: { source: "journal" | "verify" | "sysfs"; reason: string }[];
}

/** verify.json is one host's result: a few KB; anything far larger is not one. */
const VERIFY_MAX_BYTES = 4 * 2 ** 20;

const seconds = (iso: string) => Date.parse(iso) / 1000;

export async function lastApply(stateDir: string): Promise<LastApply | null> {
  const run = await new Journal(stateDir).latestRun();
  if (!run) return null;
  return { runId: run.runId, phase: run.phase, time: seconds(run.finishedAt ?? run.updatedAt) };
}

export async function lastVerify(file: string): Promise<LastVerify | null> {
  const size = await stat(file).then(
    (s) => s.size,
    (e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return null;
      throw e;
    },
  );
  if (size === null) return null;
  if (size > VERIFY_MAX_BYTES) throw new Error(`${file} is ${size} bytes, more than a verify result`);
  const r = verifyResultSchema.safeParse(JSON.parse(await readFile(file, "utf8")));
  if (!r.success) throw new Error(`${file} is not a verify result: ${r.error.issues[0]?.message}`);
  return { status: r.data.status, time: seconds(r.data.time), counts: r.data.counts };
}

const intOf = (text: string | null) => {
  const n = text === null ? Number.NaN : Number(text.trim());
  return Number.isInteger(n) && n >= 0 ? n : null;
};

/** Which devices were physical functions, for the device list it was found in. */
export interface PfCache {
  devices?: string;
  pfs?: string[];
}

/**
 * Physical functions: the PCI devices that have sriov_totalvfs. A server has a few hundred PCI
 * devices and a handful of PFs, so with a cache only the PFs are read again while the device list is
 * the same: the kernel gives a device sriov_totalvfs when it enumerates it (its SR-IOV capability),
 * not when a driver binds. A device list that changed, or a PF that no longer reads as one (swapped
 * at the same address), probes every device.
 */
export async function sriovPfs(fs: HostFs, cache: PfCache = {}): Promise<SriovPf[]> {
  const dir = "/sys/bus/pci/devices";
  const devices = ((await fs.readDir(dir)) ?? []).sort();
  const listing = devices.join(" ");
  const known = cache.devices === listing ? cache.pfs : undefined;
  const out: SriovPf[] = [];
  let stale = false;
  for (const pf of known ?? devices) {
    const total = intOf(await fs.readText(`${dir}/${pf}/sriov_totalvfs`));
    if (total === null) {
      stale = known !== undefined;
      continue;
    }
    out.push({ pf, totalVfs: total, numVfs: intOf(await fs.readText(`${dir}/${pf}/sriov_numvfs`)) ?? 0 });
  }
  cache.devices = stale ? undefined : listing;
  cache.pfs = out.map((p) => p.pf);
  return out;
}

export async function numaHugepages(fs: HostFs): Promise<NodeHugepages[]> {
  const root = "/sys/devices/system/node";
  const out: NodeHugepages[] = [];
  for (const node of ((await fs.readDir(root)) ?? []).filter((n) => /^node\d+$/.test(n))) {
    const dir = `${root}/${node}/hugepages`;
    for (const entry of ((await fs.readDir(dir)) ?? []).filter((e) => e.startsWith("hugepages-"))) {
      const total = intOf(await fs.readText(`${dir}/${entry}/nr_hugepages`));
      const free = intOf(await fs.readText(`${dir}/${entry}/free_hugepages`));
      if (total === null || free === null) continue;
      out.push({ node: node.slice(4), size: entry.slice("hugepages-".length), total, free });
    }
  }
  return out;
}

export async function hostFigures(o: {
  stateDir: string;
  verifyFile: string;
  fs: HostFs;
  /** Kept between scrapes by the collector. */
  pfCache?: PfCache;
}): Promise<HostFigures> {
  const failed: HostFigures["failed"] = [];
  const guard = async <T>(source: HostFigures["failed"][number]["source"], f: () => Promise<T>, none: T) => {
    try {
      return await f();
    } catch (e) {
      failed.push({ source, reason: (e as Error).message });
      return none;
    }
  };
  const [apply, verify, sriov, hugepages] = await Promise.all([
    guard("journal", () => lastApply(o.stateDir), null),
    guard("verify", () => lastVerify(o.verifyFile), null),
    guard("sysfs", () => sriovPfs(o.fs, o.pfCache), []),
    guard("sysfs", () => numaHugepages(o.fs), []),
  ]);
  return { apply, verify, sriov, hugepages, failed };
}
