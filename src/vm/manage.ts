// VM management over the libvirt port and kvmstrap's per-VM records: list, show, start, stop,
// delete (domain + overlay + seed + logs, never the base image), and deploying many VMs with bounded
// concurrency. Deploying the same list twice converges through deployVm.
import { readdir, rm, rmdir, stat } from "node:fs/promises";
import path from "node:path";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { type DeployDeps, type DeployResult, deployVm, libvirtDown, type VmSpec } from "./deploy.js";
import type { DomainState, Libvirt } from "./libvirt.js";
import { DEFAULT_VM_DIR, DeployError, readRecord, type VmRecord, vmPaths } from "./vm-state.js";

export type VmDeps = { libvirt: Libvirt; dir?: string; runner?: CommandRunner };
export type VmSummary = { name: string; state: DomainState; managed: boolean };
export type VmDetails = VmSummary & {
  record: VmRecord | null;
  addresses: string[];
  backingFile: string | null;
};

async function wrap<T>(lv: Libvirt, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw libvirtDown(e, lv.uri);
  }
}

export async function listVms(deps: VmDeps): Promise<VmSummary[]> {
  const dir = deps.dir ?? DEFAULT_VM_DIR;
  const domains = await wrap(deps.libvirt, () => deps.libvirt.listDomains());
  const out: VmSummary[] = [];
  for (const d of domains) out.push({ ...d, managed: (await readRecord(dir, d.name)) !== null });
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The backing file qemu-img reports for an overlay, or null. */
export async function backingFile(runner: CommandRunner, overlay: string): Promise<string | null> {
  const r = await runner.run("qemu-img", ["info", "-U", "--output=json", overlay], { timeoutMs: 30_000 });
  if (r.exitCode !== 0) return null;
  const info = JSON.parse(r.stdout) as { "full-backing-filename"?: string; "backing-filename"?: string };
  return info["full-backing-filename"] ?? info["backing-filename"] ?? null;
}

export async function showVm(name: string, deps: VmDeps): Promise<VmDetails> {
  const lv = deps.libvirt;
  const exists = await wrap(lv, () => lv.domainExists(name));
  if (!exists) throw new DeployError("not-found", `no VM named ${name}`);
  const state = await wrap(lv, () => lv.domainState(name));
  const record = await readRecord(deps.dir ?? DEFAULT_VM_DIR, name);
  const addresses =
    state === "running"
      ? (await lv.ifAddresses(name, "lease").catch(() => [])).flatMap((i) => i.addrs.map((a) => a.address))
      : [];
  const backing = record ? await backingFile(deps.runner ?? new ExecaRunner(), record.overlay) : null;
  return { name, state, managed: record !== null, record, addresses, backingFile: backing };
}

export async function startVm(name: string, deps: VmDeps): Promise<DomainState> {
  const lv = deps.libvirt;
  return wrap(lv, async () => {
    const state = await lv.domainState(name);
    if (state !== "running") await lv.start(name);
    return state;
  });
}

/** ACPI shutdown (returns at once), or a hard power-off with force. */
export async function stopVm(name: string, deps: VmDeps, options: { force?: boolean } = {}): Promise<void> {
  const lv = deps.libvirt;
  await wrap(lv, async () => {
    const state = await lv.domainState(name);
    if (state === "shut off") return;
    if (options.force) await lv.destroy(name);
    else await lv.shutdown(name);
  });
}

export type DeleteResult = { name: string; removed: string[]; keptBase: string | null };

/**
 * Removes the domain and the files kvmstrap created for it. Refuses domains kvmstrap did not deploy.
 * The overlay's backing file (the base image) is never deleted, even if it were inside the VM dir.
 */
export async function deleteVm(name: string, deps: VmDeps): Promise<DeleteResult> {
  const lv = deps.libvirt;
  const vmDir = deps.dir ?? DEFAULT_VM_DIR;
  const record = await readRecord(vmDir, name);
  const exists = await wrap(lv, () => lv.domainExists(name));
  if (!record) {
    throw new DeployError(
      exists ? "not-managed" : "not-found",
      exists ? `${name} was not deployed by kvmstrap; not deleting it` : `no VM named ${name}`,
      exists ? `virsh -c ${lv.uri} undefine ${name} removes it by hand` : undefined,
    );
  }
  const runner = deps.runner ?? new ExecaRunner();
  const base = (await backingFile(runner, record.overlay)) ?? record.base;
  const keep = new Set([path.resolve(base), path.resolve(record.base)]);
  if (exists) {
    await wrap(lv, async () => {
      if ((await lv.domainState(name)) !== "shut off") await lv.destroy(name).catch(() => {});
      await lv.undefineDomain(name, { nvram: true }).catch(async (e) => {
        // nvram removal is refused for domains without one on some libvirt versions.
        await lv.undefineDomain(name).catch(() => {
          throw e;
        });
      });
    });
  }
  const p = vmPaths(vmDir, name);
  const removed: string[] = [];
  const files = [record.overlay, record.seed, record.serialLog, `${record.serialLog}.tail`, p.record];
  for (const f of files) {
    if (keep.has(path.resolve(f))) continue;
    const there = await stat(f).then(
      () => true,
      () => false,
    );
    if (!there) continue;
    await rm(f, { force: true });
    removed.push(f);
  }
  const left = await readdir(p.dir).catch(() => null);
  if (left && left.length === 0) await rmdir(p.dir).catch(() => {});
  const baseStillThere = await stat(base).then(
    () => true,
    () => false,
  );
  return { name, removed, keptBase: baseStillThere ? base : null };
}

export type ManyResult =
  | { name: string; ok: true; result: DeployResult }
  | { name: string; ok: false; error: Error };

/** Deploys specs with at most `concurrency` deploys in flight; results in the specs' order. */
export async function deployMany(
  specs: VmSpec[],
  deps: DeployDeps,
  options: { concurrency?: number } = {},
): Promise<ManyResult[]> {
  const names = new Set<string>();
  for (const s of specs) {
    if (names.has(s.name)) throw new DeployError("invalid", `VM ${s.name} appears twice in the list`);
    names.add(s.name);
  }
  const results: ManyResult[] = new Array(specs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < specs.length; i = next++) {
      const spec = specs[i] as VmSpec;
      try {
        results[i] = { name: spec.name, ok: true, result: await deployVm(spec, deps) };
      } catch (e) {
        results[i] = { name: spec.name, ok: false, error: e as Error };
      }
    }
  };
  const n = Math.max(1, Math.min(options.concurrency ?? 4, specs.length));
  await Promise.all(Array.from({ length: n }, worker));
  return results;
}
