// A live migration through libvirt (`virsh migrate --live --p2p --tls`): the source libvirtd talks
// to the target's over TLS and qemu's migration (and, with copied storage, NBD) streams use TLS
// too. While virsh runs, the source's job is read once a second (domjobinfo) and handed to
// onProgress; the first time the job is seen, the bounded downtime is set on it
// (migrate-setmaxdowntime). The VM is made persistent on the target and undefined on the source, so
// it exists on exactly one host. A failure leaves it where libvirt leaves it: running on the source.
import { setTimeout as sleep } from "node:timers/promises";
import { type JobInfo, parseJobInfo } from "./migrate-progress.js";
import type { VirshLibvirt } from "./virsh-libvirt.js";

export interface MigrateOptions {
  vm: string;
  targetUri: string;
  /** Disks copied to the target (their files are not on shared storage); empty: none. */
  copyDisks: string[];
  maxDowntimeMs?: number;
  /** Pause the guest after this many seconds so the migration completes (virsh --timeout). */
  timeoutS?: number;
  onProgress?: (j: JobInfo) => void;
  pollMs?: number;
}

export interface MigrateResult {
  wallMs: number;
  /** The completed job as the target reports it (downtime, data moved), when it does; kept there
   *  (--keep-completed) for the operator's own domjobinfo. */
  completed: JobInfo | null;
}

export function migrateArgs(o: MigrateOptions): string[] {
  return [
    "migrate",
    "--live",
    "--p2p",
    "--tls",
    "--persistent",
    "--undefinesource",
    ...(o.copyDisks.length ? ["--copy-storage-all", "--migrate-disks", o.copyDisks.join(",")] : []),
    ...(o.timeoutS ? ["--timeout", String(o.timeoutS), "--timeout-suspend"] : []),
    o.vm,
    o.targetUri,
  ];
}

export async function migrate(
  source: VirshLibvirt,
  target: VirshLibvirt,
  o: MigrateOptions,
): Promise<MigrateResult> {
  const started = Date.now();
  let done = false;
  // The poll's sleep ends the moment virsh returns: waiting out a second after the migration
  // would add up to a second to every run.
  const stopPolling = new AbortController();
  let downtimeSet = o.maxDowntimeMs === undefined;
  const poll = (async () => {
    while (!done) {
      // Quick polls until the bounded downtime is on the job, then one a second.
      await sleep(downtimeSet ? (o.pollMs ?? 1000) : 100, undefined, { signal: stopPolling.signal }).catch(
        () => {},
      );
      if (done) break;
      const info = await source.run(["domjobinfo", o.vm], 10_000).catch(() => null);
      if (!info || done) continue;
      const job = parseJobInfo(info);
      if (job.type !== "Unbounded") continue;
      if (!downtimeSet) {
        downtimeSet = true;
        await source.run(["migrate-setmaxdowntime", o.vm, String(o.maxDowntimeMs)], 10_000).catch(() => {});
      }
      o.onProgress?.(job);
    }
  })();
  try {
    await source.run(migrateArgs(o), 3_600_000);
  } finally {
    done = true;
    stopPolling.abort();
    await poll;
  }
  const wallMs = Date.now() - started;
  const completed = await target
    .run(["domjobinfo", "--completed", "--keep-completed", o.vm], 10_000)
    .then(parseJobInfo, () => null);
  return { wallMs, completed: completed && completed.type !== "None" ? completed : null };
}
