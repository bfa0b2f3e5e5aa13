// `kvmstrap cluster status`: each member as this host sees it over libvirt's TLS with this member's
// client certificate: reachable or not and why (refused, certificate rejected, unreachable, timeout),
// and what its libvirtd says about itself (hostname, host uuid). Every probe is bounded in time and
// they run side by side, so a dead member costs one timeout, not one per member. A plain TCP connect
// to 16514 first (3 s) tells a dead or refusing member quickly; the libvirt session after it may take
// longer (a libvirtd's first capabilities call probes its qemu binaries: seconds on a busy host).
// Where the cluster has HA, pacemaker's own view comes beside it (one crm_mon snapshot, bounded too):
// quorum, each node's state, where each HA VM runs, and the fencing history.
import { closeSync, openSync, readSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { InputError } from "../core/errors.js";
import type { CommandRunner } from "../host/commands.js";
import { CRM_MON_ARGV, CRM_MON_MAX_BYTES, type CrmStatus, parseCrmMon } from "../host/crm-mon.js";
import { realPath } from "../host/pki/layout.js";
import { CLUSTER_PATHS } from "../plan/cluster-plan.js";
import { vmResourceId } from "../plan/render/cib.js";
import { COROSYNC_CONF, COROSYNC_CONF_MARK } from "../plan/render/corosync-conf.js";
import { adaptersFor } from "./adapters.js";
import { readClusterState } from "./cluster-trust.js";

export type Reason = "refused" | "certificate-rejected" | "unreachable" | "timeout" | "error";

export interface MemberStatus {
  host: string;
  address: string;
  self: boolean;
  reachable: boolean;
  reason?: Reason;
  /** libvirt's message when not reachable (one line). */
  detail?: string;
  libvirt?: { hostname: string; hostUuid: string | null };
  ms: number;
}

export interface ClusterStatus {
  cluster: string;
  self: string;
  members: MemberStatus[];
  /** Pacemaker's view, where the cluster has HA (absent otherwise). */
  ha?: HaStatus;
}

export interface HaStatus {
  /** Why there is no view (crm_mon missing, timed out, or pacemaker not answering); the rest is empty. */
  error?: string;
  /** null: no DC yet (the cluster is forming), so quorum is not known. */
  quorate: boolean | null;
  dc: string | null;
  stonithEnabled: boolean | null;
  nodes: { name: string; online: boolean; standby: boolean; unclean: boolean }[];
  /** Each HA VM (its VirtualDomain resource, prefix stripped) and the nodes it runs on: none when
   *  stopped; two would be the state pacemaker exists to prevent, and it is shown as such. */
  vms: { vm: string; role: string; nodes: string[]; failed: boolean; managed: boolean }[];
  fencing: {
    action: string;
    target: string;
    status: string;
    delegate: string | null;
    origin: string | null;
    completed: string | null;
    exitReason: string | null;
  }[];
  ms: number;
}

export const HA_TIMEOUT_MS = 10_000;
const VM_PREFIX = vmResourceId("");

/** What kvmstrap shows of a crm_mon snapshot: its HA VMs by VM name, the nodes and fencing as they are. */
export function haFromCrm(c: CrmStatus, ms: number): HaStatus {
  return {
    quorate: c.quorate,
    dc: c.dc,
    stonithEnabled: c.stonithEnabled,
    nodes: c.nodes.map(({ name, online, standby, unclean }) => ({ name, online, standby, unclean })),
    vms: c.resources
      .filter((r) => r.id.startsWith(VM_PREFIX))
      .map((r) => ({
        vm: r.id.slice(VM_PREFIX.length),
        role: r.role,
        nodes: r.nodes,
        failed: r.failed,
        managed: r.managed,
      })),
    fencing: c.fencing.map(({ action, target, status, delegate, origin, completed, exitReason }) => ({
      action,
      target,
      status,
      delegate,
      origin,
      completed,
      exitReason,
    })),
    ms,
  };
}

/** One crm_mon snapshot through the runner, bounded in time and size; an error is a status, not a throw. */
export async function haStatus(runner: CommandRunner, timeoutMs = HA_TIMEOUT_MS): Promise<HaStatus> {
  const t0 = Date.now();
  const failed = (error: string): HaStatus => ({
    error,
    quorate: null,
    dc: null,
    stonithEnabled: null,
    nodes: [],
    vms: [],
    fencing: [],
    ms: Date.now() - t0,
  });
  const [file, ...args] = CRM_MON_ARGV;
  if (!(await runner.which(file)))
    return failed(`${file} not found: install pacemaker-cli-utils on this host`);
  const r = await runner.run(file, args, { timeoutMs, maxBytes: CRM_MON_MAX_BYTES });
  if (r.timedOut) return failed(`${file} gave no answer in ${timeoutMs} ms`);
  if (r.overflowed) return failed(`${file} printed more than ${CRM_MON_MAX_BYTES} bytes`);
  // crm_mon prints its failure as XML too (a <status> with a code and message): parse before the exit code.
  try {
    return haFromCrm(parseCrmMon(r.stdout), Date.now() - t0);
  } catch (e) {
    const why = r.stderr.trim().split("\n")[0]?.slice(0, 300);
    return failed(
      r.stdout.trim() ? (e as Error).message : `${file} exited ${r.exitCode}: ${why || "no output"}`,
    );
  }
}

/**
 * Whether status asks pacemaker: the answer's cluster.ha when status has the answer; otherwise whether
 * this host has the corosync.conf that kvmstrap's HA plan writes. Not whether crm_mon is installed:
 * pacemaker's tools on a cluster without HA (or a test host) say nothing about this cluster, and
 * asking a pacemaker that is not running would turn every status of a plain cluster into an error.
 */
export const wantsHa = (root: string, answerHasHa?: boolean): boolean =>
  answerHasHa ?? writtenByKvmstrap(path.join(root, COROSYNC_CONF));

// Debian's corosync package installs a corosync.conf of its own: only kvmstrap's says HA is on.
function writtenByKvmstrap(file: string): boolean {
  try {
    const fd = openSync(file, "r");
    try {
      const head = Buffer.alloc(COROSYNC_CONF_MARK.length);
      readSync(fd, head, 0, head.length, 0);
      return head.toString("utf8") === COROSYNC_CONF_MARK;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

export const CONNECT_TIMEOUT_MS = 3000;
export const PROBE_TIMEOUT_MS = 20_000;
const TLS_PORT = 16514;

/** Whether anything accepts a TCP connection on ADDRESS:16514, and why not. */
function tcpReach(
  address: string,
  timeoutMs = CONNECT_TIMEOUT_MS,
): Promise<{ reason: Reason; detail: string } | null> {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port: TLS_PORT });
    const done = (v: { reason: Reason; detail: string } | null) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(timeoutMs, () =>
      done({ reason: "timeout", detail: `no TCP answer on ${TLS_PORT} in ${timeoutMs} ms` }),
    );
    s.on("connect", () => done(null));
    s.on("error", (e: NodeJS.ErrnoException) =>
      done({
        reason:
          e.code === "ECONNREFUSED" ? "refused" : /UNREACH/.test(e.code ?? "") ? "unreachable" : "error",
        detail: `${e.code ?? "error"} on ${TLS_PORT}: ${e.message}`,
      }),
    );
  });
}

/** The URI that reaches ADDRESS with this member's client certificate (pkipath: works under a root). */
export const memberUri = (root: string, address: string) =>
  `qemu+tls://${address.includes(":") ? `[${address}]` : address}/system?pkipath=${realPath(root, CLUSTER_PATHS.clientDir)}`;

/** Why libvirt could not connect, from its message (LC_ALL=C). */
export function reasonOf(message: string, timedOut: boolean): Reason {
  if (timedOut) return "timeout";
  if (/connection refused/i.test(message)) return "refused";
  if (/no route to host|network is unreachable|host is unreachable/i.test(message)) return "unreachable";
  if (/certificate|handshake|tls|x509|authentication|not trusted|verif/i.test(message))
    return "certificate-rejected";
  return "error";
}

export async function probeMember(address: string, uri: string, timeoutMs = PROBE_TIMEOUT_MS) {
  const t0 = Date.now();
  const tcp = await tcpReach(address);
  if (tcp) return { reachable: false as const, ...tcp, ms: Date.now() - t0 };
  // One connection for both questions: virsh runs "hostname; capabilities" in one session.
  const r = await Promise.race([
    execa("virsh", ["-c", uri, "hostname; capabilities"], {
      reject: false,
      timeout: timeoutMs,
      env: { LC_ALL: "C" },
      stdin: "ignore",
    }),
    // execa's timeout kills virsh; this bounds a virsh that ignores the signal.
    sleep(timeoutMs + 2000, null, { ref: false }),
  ]);
  const ms = Date.now() - t0;
  if (r === null || r.timedOut)
    return {
      reachable: false as const,
      reason: "timeout" as Reason,
      detail: `no answer in ${timeoutMs} ms`,
      ms,
    };
  if (r.exitCode !== 0) {
    const detail = r.stderr
      .split("\n")
      .map((l) => l.replace(/^error:\s*/, "").trim())
      .filter(Boolean)
      .join("; ")
      .slice(0, 400);
    return { reachable: false as const, reason: reasonOf(detail, false), detail, ms };
  }
  const hostname = r.stdout.split("\n")[0]?.trim() ?? "";
  const hostUuid = /<host>\s*<uuid>([0-9a-f-]{36})<\/uuid>/.exec(r.stdout)?.[1] ?? null;
  return { reachable: true as const, libvirt: { hostname, hostUuid }, ms };
}

export async function clusterStatus(r: {
  root?: string;
  members?: { host: string; address: string }[];
  timeoutMs?: number;
  /** The answer's say (cluster.ha present or not) when status was given the answer. */
  ha?: boolean;
  /** Runs crm_mon (default: this root's runner). */
  runner?: CommandRunner;
}): Promise<ClusterStatus> {
  const root = r.root ?? "/";
  const state = await readClusterState(root);
  if (!state)
    throw new InputError("this host is in no cluster (no /etc/kvmstrap/cluster): run cluster init or join");
  const members = r.members ?? state.members;
  const ha = wantsHa(root, r.ha) ? haStatus(r.runner ?? adaptersFor(root).runner) : null;
  const probed = await Promise.all(
    members.map(async (m): Promise<MemberStatus> => {
      const p = await probeMember(m.address, memberUri(root, m.address), r.timeoutMs);
      return { host: m.host, address: m.address, self: m.host === state.self.host, ...p };
    }),
  );
  const out: ClusterStatus = { cluster: state.cluster, self: state.self.host, members: probed };
  if (ha) out.ha = await ha;
  return out;
}
