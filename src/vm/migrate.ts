// A live migration through libvirt (`virsh migrate --live --p2p --tls`): the source libvirtd talks
// to the target's over TLS and qemu's migration (and, with copied storage, NBD) streams use TLS
// too. While virsh runs, the source's job is read once a second (domjobinfo, asked of one kept virsh:
// on a busy host a virsh started each second takes CPU from the migration it watches) and handed
// to onProgress; the first time the job is seen, the bounded downtime is set on it
// (migrate-setmaxdowntime). The VM is made persistent on the target and undefined on the source, so
// it exists on exactly one host. A failure leaves it where libvirt leaves it: running on the source.
//
// The completed job's figures (downtime, data moved) come from the source's job-completed event,
// which libvirt emits before `virsh migrate` returns: a listener on the local socket started beside
// the migration, rather than a second TLS connection to the target afterwards (0.07-0.1 s of every
// run). The target's domjobinfo is the fallback when the event did not arrive.
import { setTimeout as sleep } from "node:timers/promises";
import { type JobInfo, parseJobCompletedEvent, parseJobInfo } from "./migrate-progress.js";
import type { Virsh } from "./virsh-exec.js";
import { isPositionalName, VirshSession } from "./virsh-session.js";

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
  /** The completed job (downtime, data moved), when libvirt reported it. */
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

/** How long after `virsh migrate` returns the job-completed event may still be on its way. */
const EVENT_GRACE_MS = 300;

export async function migrate(source: Virsh, target: Virsh, o: MigrateOptions): Promise<MigrateResult> {
  const started = Date.now();
  let done = false;
  const stopEvent = new AbortController();
  const event = source
    .run(["event", "--domain", o.vm, "--event", "job-completed"], 3_600_000, stopEvent.signal)
    .then(parseJobCompletedEvent, () => null);
  // The poll's sleep ends the moment virsh returns: waiting out a second after the migration
  // would add up to a second to every run.
  const stopPolling = new AbortController();
  let downtimeSet = o.maxDowntimeMs === undefined;
  const watcher = isPositionalName(o.vm) ? new VirshSession(source.uri) : null;
  const jobInfo = (): Promise<string | null> =>
    watcher
      ? watcher.run(["domjobinfo", o.vm], { timeoutMs: 10_000, maxBytes: 2 ** 20 }).then(
          (r) => (r.exitCode === 0 ? r.stdout : null),
          () => null,
        )
      : source.run(["domjobinfo", o.vm], 10_000).catch(() => null);
  const poll = (async () => {
    while (!done) {
      // Quick polls until the bounded downtime is on the job, then one a second.
      await sleep(downtimeSet ? (o.pollMs ?? 1000) : 100, undefined, { signal: stopPolling.signal }).catch(
        () => {},
      );
      if (done) break;
      const info = await jobInfo();
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
  } catch (e) {
    stopEvent.abort();
    await event;
    throw e;
  } finally {
    done = true;
    stopPolling.abort();
    await poll;
    await watcher?.close();
  }
  const wallMs = Date.now() - started;
  const grace = setTimeout(() => stopEvent.abort(), EVENT_GRACE_MS);
  const fromEvent = await event;
  clearTimeout(grace);
  const completed =
    fromEvent ??
    (await target
      .run(["domjobinfo", "--completed", "--keep-completed", o.vm], 10_000)
      .then(parseJobInfo, () => null));
  return { wallMs, completed: completed && completed.type !== "None" ? completed : null };
}
