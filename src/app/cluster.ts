// `kvmstrap cluster init|join|certs|rotate-certs|leave`: a host becomes a member, renews its
// certificates, or stops being one.
//
// init (the first member) makes the cluster CA and the corosync authkey and writes the join bundle;
// join (every other member) takes them from the bundle. Both then issue this member's certificates
// from the cluster CA (cluster-trust.ts) and apply the cluster's part of the answer's plan
// (src/plan/cluster-plan.ts: TLS-only libvirtd, TLS migration, the authkey for corosync) as a run of
// its own, journaled with its inverses, so `leave` undoes exactly that run. The answer is validated
// by the one rule set first: a bad cluster section changes nothing.
import { hostname as osHostname } from "node:os";
import path from "node:path";
import { selfMember } from "../answer/rules/cluster.js";
import type { Answer } from "../answer/schema.js";
import type { ApplyResult } from "../apply/engine.js";
import { EventBus } from "../apply/events.js";
import { InputError } from "../core/errors.js";
import { rotatePki } from "../host/pki/pki.js";
import type { Plan } from "../plan/actions.js";
import { certificateAddresses, isClusterAction } from "../plan/cluster-plan.js";
import { adaptersFor, stateDirOf } from "./adapters.js";
import {
  certProblems,
  forgetTrust,
  issueMemberCerts,
  keepTrust,
  keptTrust,
  newTrust,
  readBundle,
  readClusterState,
  type Trust,
  writeBundle,
} from "./cluster-trust.js";
import { qemuKeyOwner } from "./pki.js";
import { blockers, type Prepared, prepareFile } from "./prepare.js";

export interface ClusterRequest {
  answerFile: string;
  root?: string;
  /** Apply the cluster's plan after the trust is in place (false: print it; `kvmstrap apply` later). */
  apply?: boolean;
  bus?: EventBus;
}

export interface ClusterResult {
  cluster: string;
  self: string;
  /** The join bundle written (init), never its content. */
  bundle?: string;
  certs: { written: string[]; kept: boolean };
  /** The cluster's actions of the answer's plan. */
  plan: Plan;
  applied: ApplyResult | null;
}

const rootOf = (r: { root?: string | undefined }) => path.resolve(r.root ?? "/");

/** The answer validated on this machine, its cluster section and this host's member entry. */
async function prepareMember(r: ClusterRequest) {
  const root = rootOf(r);
  const prepared = await prepareFile(r.answerFile, root === "/" ? {} : { root }, { probe: "never" });
  const cluster = prepared.answer.cluster;
  if (!cluster) throw new InputError(`${r.answerFile}: cluster: the answer has no cluster section`);
  const wrong = blockers(prepared).filter((b) => b.startsWith("cluster"));
  if (wrong.length) throw new InputError(wrong.map((b) => `${r.answerFile}: ${b}`).join("\n"));
  const self = selfMember(cluster, prepared.report);
  if (!self)
    throw new InputError(
      `${r.answerFile}: cluster.members: cannot tell which member this host is (its hostname is unknown)`,
    );
  return { root, prepared, cluster, self };
}

/** Only the cluster's actions of the answer's plan: the run `leave` undoes. */
export function clusterPart(p: Prepared): Plan {
  const { expect: _expect, ...plan } = p.plan;
  return {
    ...plan,
    actions: p.plan.actions.filter((a) => isClusterAction(a.id)),
    refusals: p.plan.refusals.filter((x) => x.path.startsWith("cluster")),
    needsReboot: false,
  };
}

async function becomeMember(
  r: ClusterRequest,
  m: Awaited<ReturnType<typeof prepareMember>>,
  trust: Trust,
): Promise<Omit<ClusterResult, "bundle">> {
  const { root, cluster, self, prepared } = m;
  await keepTrust(root, trust, {
    cluster: cluster.name,
    self: { host: self.host, address: self.address, migrationAddress: self.migrationAddress ?? self.address },
    members: cluster.members.map((x) => ({ host: x.host, address: x.address })),
  });
  const certs = await issueMemberCerts({ root, hostname: self.host, addresses: certificateAddresses(self) });
  const plan = clusterPart(prepared);
  let applied: ApplyResult | null = null;
  if (r.apply !== false) {
    const { runApply } = await import("./apply.js");
    applied = await runApply(plan, { root, bus: r.bus ?? new EventBus(), answer: prepared.answer as Answer });
  }
  return { cluster: cluster.name, self: self.host, certs, plan, applied };
}

/** The first member: a new cluster CA and authkey (kept ones reused: init again rewrites the bundle). */
export async function clusterInit(r: ClusterRequest & { bundleOut?: string }): Promise<ClusterResult> {
  const m = await prepareMember(r);
  const kept = await keptTrust(m.root);
  if (kept && kept.cluster !== m.cluster.name)
    throw new InputError(
      `this host is a member of cluster ${kept.cluster}: run kvmstrap cluster leave before making ${m.cluster.name}`,
    );
  const trust = kept ?? (await newTrust(m.cluster.name));
  const bundle = path.resolve(r.bundleOut ?? path.join(m.root, "etc/kvmstrap/cluster/join-bundle.json"));
  // The bundle before anything changes the host: a failure to write it leaves the host as it was.
  await writeBundle(bundle, trust);
  return { ...(await becomeMember(r, m, trust)), bundle };
}

/** Every other member: the CA and authkey from the bundle init wrote. */
export async function clusterJoin(r: ClusterRequest & { bundle: string }): Promise<ClusterResult> {
  const m = await prepareMember(r);
  const trust = await readBundle(r.bundle, m.cluster.name);
  const kept = await keptTrust(m.root);
  if (kept && (kept.cluster !== trust.cluster || kept.caCert.trim() !== trust.caCert.trim()))
    throw new InputError(
      `this host already holds cluster ${kept.cluster}'s trust from another CA: run kvmstrap cluster leave first`,
    );
  return becomeMember(r, m, trust);
}

/** `cluster certs`: this member's certificates where missing or wrong (the plan's cluster.certs step). */
export async function clusterCerts(r: { root?: string; addresses: string[]; check?: boolean }) {
  const root = rootOf(r);
  const state = await readClusterState(root);
  if (!state) throw new InputError("this host is in no cluster: run kvmstrap cluster init or join first");
  const addresses = r.addresses.length
    ? r.addresses
    : [...new Set([state.self.address, state.self.migrationAddress])];
  const req = { root, hostname: state.self.host, addresses };
  if (r.check) return { problems: await certProblems(req), written: [] as string[] };
  const { written } = await issueMemberCerts(req);
  return { problems: await certProblems(req), written };
}

/**
 * `cluster rotate-certs`: new server and client certificates from the same cluster CA (old ones stay
 * valid until they expire: they come from a CA the members still trust). With a bundle, the CA the
 * bundle carries replaces the kept one first (a CA rotation, see the cluster README's procedure).
 */
export async function clusterRotateCerts(r: { root?: string; bundle?: string }) {
  const root = rootOf(r);
  const state = await readClusterState(root);
  const kept = await keptTrust(root);
  if (!state || !kept)
    throw new InputError("this host is in no cluster: run kvmstrap cluster init or join first");
  const addresses = [...new Set([state.self.address, state.self.migrationAddress])];
  if (r.bundle) {
    const trust = await readBundle(r.bundle, state.cluster);
    await keepTrust(root, trust, state);
    return { ...(await issueMemberCerts({ root, hostname: state.self.host, addresses })), caRotated: true };
  }
  // New certificates even when the set is complete; qemu's and the client directory follow them.
  return {
    ...(await issueMemberCerts({ root, hostname: state.self.host, addresses, force: true })),
    caRotated: false,
  };
}

/** `cluster rotate-certs --new-ca`: a new cluster CA (and bundle) on the member that runs it. */
export async function clusterNewCa(r: { root?: string; bundleOut: string }) {
  const root = rootOf(r);
  const state = await readClusterState(root);
  const kept = await keptTrust(root);
  if (!state || !kept)
    throw new InputError("this host is in no cluster: run kvmstrap cluster init or join first");
  // The authkey is kept: corosync's key rotation is its own (corosync-cfgtool -R after a new key).
  const fresh = await newTrust(state.cluster);
  const trust = { ...fresh, authkey: kept.authkey };
  await writeBundle(path.resolve(r.bundleOut), trust);
  await keepTrust(root, trust, state);
  const addresses = [...new Set([state.self.address, state.self.migrationAddress])];
  return { ...(await issueMemberCerts({ root, hostname: state.self.host, addresses })), bundle: r.bundleOut };
}

export interface LeaveResult {
  cluster: string | null;
  /** The cluster runs undone, newest first (none when none was applied: a join with --no-apply). */
  undoneRuns: string[];
  /** The run whose undo failed. */
  failedRun?: string;
  status: "left" | "failed";
  error?: string;
}

/**
 * `cluster leave`: undoes every applied cluster run not undone yet through the journal, newest first
 * (libvirtd.conf and qemu.conf restored, the sockets put back, the authkey removed, libvirtd
 * restarted), then gives the host a lone CA of its own again (the cluster CA's key leaves the host;
 * the members no longer trust this host's certificates once the cluster CA is rotated) and forgets
 * the cluster's files. Every run, not only the newest: a join run again on a converged member skips
 * the steps already done, so its run holds none of the first run's inverses.
 */
export async function clusterLeave(r: { root?: string; bus?: EventBus }): Promise<LeaveResult> {
  const root = rootOf(r);
  const state = await readClusterState(root);
  const { Journal } = await import("../apply/journal.js");
  const { undoLastRun } = await import("../apply/engine.js");
  const stateDir = stateDirOf(root);
  const journal = new Journal(stateDir);
  const runs = (await Promise.all((await journal.runIds()).map((id) => journal.load(id))))
    .filter((x) => x !== null)
    .filter(
      (x) =>
        x.phase !== "undone" &&
        x.plan.actions.length > 0 &&
        x.plan.actions.every((a) => isClusterAction(a.id)) &&
        x.actions.some((a) => a.status === "done" || a.status === "started"),
    )
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  if (!state && runs.length === 0) throw new InputError("this host is in no cluster: nothing to leave");
  const undoneRuns: string[] = [];
  const { target, runner, libvirt } = adaptersFor(root);
  for (const run of runs) {
    const u = await undoLastRun({
      target,
      runner,
      libvirt,
      stateDir,
      bus: r.bus ?? new EventBus(),
      runId: run.runId,
    });
    if (u.status === "failed")
      return {
        cluster: state?.cluster ?? null,
        undoneRuns,
        failedRun: run.runId,
        status: "failed",
        ...(u.error ? { error: u.error } : {}),
      };
    undoneRuns.push(run.runId);
  }
  if (state) {
    const owner = await qemuKeyOwner(root);
    const o = { runner: adaptersFor("/").runner, root, ...(owner ? { consoleKeyOwner: owner } : {}) };
    const id = { hostname: state.self.host || osHostname(), addresses: [state.self.address] };
    // A new lone CA (the trust file then holds it and the cluster CA), then once more from it, so
    // only the lone CA is trusted and the cluster CA's key is in no file kvmstrap keeps.
    await rotatePki(id, { ...o, ca: true });
    await rotatePki(id, o);
  }
  await forgetTrust(root);
  return { cluster: state?.cluster ?? null, undoneRuns, status: "left" };
}

/**
 * libvirtd re-reads its TLS files (CA, certificate, key) without a restart, so the guests and open
 * connections are not touched: `virt-admin server-update-tls libvirtd` (libvirt 6.2 and later).
 */
export async function reloadLibvirtdTls(adminUri: string): Promise<{ ok: boolean; error?: string }> {
  const { execa } = await import("execa");
  const r = await execa("virt-admin", ["-c", adminUri, "server-update-tls", "libvirtd"], {
    reject: false,
    timeout: 10_000,
    env: { LC_ALL: "C" },
  });
  if (r.exitCode === 0) return { ok: true };
  return {
    ok: false,
    error: r.timedOut ? "timed out" : r.stderr.trim().split("\n").pop() || `exit ${r.exitCode}`,
  };
}
