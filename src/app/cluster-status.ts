// `kvmstrap cluster status`: each member as this host sees it over libvirt's TLS with this member's
// client certificate: reachable or not and why (refused, certificate rejected, unreachable, timeout),
// and what its libvirtd says about itself (hostname, host uuid). Every probe is bounded in time and
// they run side by side, so a dead member costs one timeout, not one per member. A plain TCP connect
// to 16514 first (3 s) tells a dead or refusing member quickly; the libvirt session after it may take
// longer (a libvirtd's first capabilities call probes its qemu binaries: seconds on a busy host).
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { InputError } from "../core/errors.js";
import { realPath } from "../host/pki/layout.js";
import { CLUSTER_PATHS } from "../plan/cluster-plan.js";
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
  /** Quorum, fencing and where each HA VM runs: filled by the HA layer when it is there. */
  ha?: unknown;
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
}): Promise<ClusterStatus> {
  const root = r.root ?? "/";
  const state = await readClusterState(root);
  if (!state)
    throw new InputError("this host is in no cluster (no /etc/kvmstrap/cluster): run cluster init or join");
  const members = r.members ?? state.members;
  const probed = await Promise.all(
    members.map(async (m): Promise<MemberStatus> => {
      const p = await probeMember(m.address, memberUri(root, m.address), r.timeoutMs);
      return { host: m.host, address: m.address, self: m.host === state.self.host, ...p };
    }),
  );
  return { cluster: state.cluster, self: state.self.host, members: probed };
}
