// `kvmstrap cluster init|join|status|certs|rotate-certs|leave`: hosts that trust each other (one
// cluster CA, libvirt TLS with client certificates, TLS migration, corosync's authkey). The work is
// src/app/cluster*.ts; this parses and prints. The join bundle's content is never printed.
import type { ClusterResult } from "../app/cluster.js";
import type { ClusterStatus, HaStatus } from "../app/cluster-status.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const CLUSTER_HELP = `Usage: kvmstrap cluster <command> [options]

Hosts described by the answer's cluster: section become members that trust each other: one CA
per cluster (made by init, carried by the join bundle), libvirtd on TLS only with client
certificates (never plain TCP), qemu's migration and NBD streams over TLS, and corosync's authkey.

  init --answer FILE [--bundle-out FILE]
           On the first member: make the cluster CA and corosync authkey, write the join bundle
           (0600; default /etc/kvmstrap/cluster/join-bundle.json), issue this member's
           certificates and apply the cluster's part of the plan (journaled, undone by leave).
  join --answer FILE --bundle FILE
           On every other member: the same, with the CA and authkey from init's bundle. Copy the
           bundle over SSH and delete it afterwards: it holds the CA's key.
  status [--answer FILE] [--json]
           Each member over TLS with this member's client certificate: reachable, or why not
           (refused, certificate-rejected, unreachable, timeout: 3 s to connect, 20 s for
           the session), its libvirt hostname and host uuid. Where the cluster has HA (the
           answer's cluster.ha; without --answer, kvmstrap's corosync.conf on this host):
           pacemaker's view from crm_mon (10 s): quorum, each node online/standby/unclean,
           where each HA VM runs, and the fencing history. Exit 1 when a member is not
           reachable, crm_mon gives no view, the partition has no quorum, or a VM runs twice.
  certs [--address IP]... [--check]
           This member's certificates from the cluster CA where missing or wrong (the plan's
           cluster.certs step); --check only says what is wrong (exit 1).
  rotate-certs [--bundle FILE | --new-ca --bundle-out FILE]
           New certificates from the same cluster CA. A CA rotation: --new-ca --bundle-out F on
           one member, then rotate-certs --bundle F on each other member; certificates from the
           old CA stop working on a member once it has rotated. libvirtd reloads its files
           (virt-admin server-update-tls) without a restart; running guests are not touched.
  leave    Undo this host's cluster runs through the journal, newest first (libvirtd.conf,
           qemu.conf, the sockets, the authkey, corosync and pacemaker), give it a lone CA
           again and forget the cluster's files.

Options:
  --answer FILE       The answer file holding the cluster: section (the same on every member)
  --bundle FILE       join, rotate-certs: the bundle init (or rotate-certs --new-ca) wrote
  --bundle-out FILE   init, rotate-certs --new-ca: where to write the bundle
  --new-ca            rotate-certs: a new cluster CA (writes a bundle for the other members)
  --address IP        certs: an address the server certificate names (repeatable; default: the
                      member's cluster and migration addresses)
  --check             certs: check only
  --no-apply          init, join: set up the trust only and print the plan (kvmstrap apply
                      --answer FILE applies the same actions later)
  --admin-uri URI     rotate-certs: libvirtd's admin URI for the reload (default
                      libvirtd:///system on this host, none under --root)
  --root DIR          Act on the machine tree DIR instead of this host
  --json              Print the result as JSON
  -h, --help          Print this help

Exit: 0 done (status: every member reachable, HA quorate), 1 a step failed or status found a fault,
2 usage or input error (the file and key named).
`;

export const CLUSTER_OPTIONS = {
  answer: { type: "string" },
  bundle: { type: "string" },
  "bundle-out": { type: "string" },
  "new-ca": { type: "boolean" },
  address: { type: "string", multiple: true },
  check: { type: "boolean" },
  "no-apply": { type: "boolean" },
  "admin-uri": { type: "string" },
  root: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const SUBS = ["init", "join", "status", "certs", "rotate-certs", "leave"] as const;
type Sub = (typeof SUBS)[number];

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

function printMember(r: ClusterResult): void {
  if (r.bundle) err(`join bundle written to ${r.bundle} (0600; it holds the CA key: copy it over SSH)\n`);
  err(
    r.certs.kept
      ? "certificates: kept (complete)\n"
      : `certificates: ${r.certs.written.length} files written\n`,
  );
  for (const a of r.plan.actions) out(`  ${a.id}: ${a.summary}\n`);
  if (!r.applied)
    out(`cluster ${r.cluster}: ${r.self}: trust in place; apply with kvmstrap apply --answer FILE\n`);
  else {
    out(`cluster ${r.cluster}: ${r.self} ${r.applied.status} (run ${r.applied.runId})\n`);
    // The step that failed and why: nothing else prints the run's events here.
    if (r.applied.error)
      err(`${r.applied.error}\n${r.applied.remediation ? `fix: ${r.applied.remediation}\n` : ""}`);
  }
}

function printStatus(s: ClusterStatus): void {
  out(`cluster ${s.cluster} (seen from ${s.self})\n`);
  for (const m of s.members) {
    const who = `${m.host}${m.self ? " (this host)" : ""} ${m.address}`;
    if (m.reachable)
      out(
        `  ok    ${who}: TLS, libvirt ${m.libvirt?.hostname} uuid ${m.libvirt?.hostUuid ?? "?"} (${m.ms} ms)\n`,
      );
    else out(`  DOWN  ${who}: ${m.reason}: ${m.detail ?? ""}\n`);
  }
  if (s.ha) out(formatHa(s.ha));
}

/** The HA view as status prints it (one line per node, VM and fence event). */
export function formatHa(h: HaStatus): string {
  const lines: string[] = [];
  const out = (l: string) => lines.push(l);
  if (h.error) {
    out(`ha: no view: ${h.error}\n`);
    return lines.join("");
  }
  const quorum = h.quorate === null ? "quorum unknown (no DC yet)" : h.quorate ? "quorate" : "NO QUORUM";
  const stonith = h.stonithEnabled === false ? ", STONITH DISABLED" : "";
  out(`ha: ${quorum}, DC ${h.dc ?? "none"}${stonith} (${h.ms} ms)\n`);
  for (const n of h.nodes) {
    const state = n.unclean
      ? "UNCLEAN (to be fenced)"
      : !n.online
        ? "OFFLINE"
        : n.standby
          ? "standby"
          : "online";
    out(`  node  ${n.name}: ${state}${n.name === h.dc ? " (DC)" : ""}\n`);
  }
  for (const v of h.vms) {
    const where =
      v.nodes.length === 0
        ? "not running"
        : v.nodes.length > 1
          ? `RUNNING ON ${v.nodes.length} NODES: ${v.nodes.join(", ")}`
          : `running on ${v.nodes[0]}`;
    const flags = `${v.failed ? ", FAILED" : ""}${v.managed ? "" : ", unmanaged"}`;
    out(`  vm    ${v.vm}: ${where} (${v.role}${flags})\n`);
  }
  if (h.fencing.length === 0) out("  fencing: none recorded\n");
  for (const f of h.fencing)
    out(
      `  fence ${f.action} ${f.target}: ${f.status}${f.delegate ? ` by ${f.delegate}` : ""}${f.origin ? ` for ${f.origin}` : ""}${f.completed ? ` at ${f.completed}` : ""}${f.exitReason ? ` (${f.exitReason})` : ""}\n`,
    );
  return lines.join("");
}

/** Whether the HA view shows a fault status must report by its exit code. */
export const haFault = (h: HaStatus | undefined): boolean =>
  h !== undefined && (h.error !== undefined || h.quorate === false || h.vms.some((v) => v.nodes.length > 1));

function need(v: string | undefined, flag: string, sub: string): string {
  if (!v) throw new UsageError(`cluster ${sub} needs --${flag}`);
  return v;
}

export async function clusterCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, CLUSTER_OPTIONS);
  const [sub, extra] = positionals;
  if (values.help || sub === "help") {
    out(CLUSTER_HELP);
    return EXIT.ok;
  }
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (!SUBS.includes(sub as Sub))
    throw new UsageError(
      sub ? `unknown cluster command "${sub}"` : `cluster needs a command: ${SUBS.join(", ")}`,
    );
  const root = values.root ? { root: values.root } : {};
  const json = (v: unknown) => out(`${JSON.stringify(v, null, 2)}\n`);
  const app = await import("../app/cluster.js");
  switch (sub as Sub) {
    case "init":
    case "join": {
      const answerFile = need(values.answer, "answer", sub as string);
      const base = { answerFile, ...root, apply: !values["no-apply"] };
      const r =
        sub === "init"
          ? await app.clusterInit({
              ...base,
              ...(values["bundle-out"] ? { bundleOut: values["bundle-out"] } : {}),
            })
          : await app.clusterJoin({ ...base, bundle: need(values.bundle, "bundle", "join") });
      if (values.json) json(r);
      else printMember(r);
      return r.applied && r.applied.status !== "succeeded" ? EXIT.failed : EXIT.ok;
    }
    case "status": {
      const { clusterStatus } = await import("../app/cluster-status.js");
      let members: { host: string; address: string }[] | undefined;
      let ha: boolean | undefined;
      if (values.answer) {
        const { loadAnswerFile } = await import("../answer/load.js");
        const a = await loadAnswerFile(values.answer);
        if (!a.cluster) throw new UsageError(`${values.answer}: cluster: the answer has no cluster section`);
        members = a.cluster.members.map((m) => ({ host: m.host, address: m.address }));
        ha = a.cluster.ha !== undefined;
      }
      const s = await clusterStatus({
        ...root,
        ...(members ? { members } : {}),
        ...(ha !== undefined ? { ha } : {}),
      });
      if (values.json) json(s);
      else printStatus(s);
      return s.members.every((m) => m.reachable) && !haFault(s.ha) ? EXIT.ok : EXIT.failed;
    }
    case "certs": {
      const r = await app.clusterCerts({
        ...root,
        addresses: values.address ?? [],
        check: Boolean(values.check),
      });
      if (values.json) json(r);
      else {
        for (const w of r.written) err(`wrote ${w}\n`);
        for (const p of r.problems) out(`  ${p}\n`);
        out(r.problems.length ? "certs: incomplete\n" : "certs: complete\n");
      }
      return r.problems.length ? EXIT.failed : EXIT.ok;
    }
    case "rotate-certs": {
      if (values["new-ca"] && values.bundle)
        throw new UsageError("--new-ca writes a bundle (--bundle-out); --bundle reads one");
      const r = values["new-ca"]
        ? await app.clusterNewCa({
            ...root,
            bundleOut: need(values["bundle-out"], "bundle-out", "rotate-certs --new-ca"),
          })
        : await app.clusterRotateCerts({ ...root, ...(values.bundle ? { bundle: values.bundle } : {}) });
      const adminUri = values["admin-uri"] ?? (values.root ? undefined : "libvirtd:///system");
      const reloaded = adminUri ? await app.reloadLibvirtdTls(adminUri) : null;
      if (values.json) json({ ...r, reloaded });
      else {
        for (const w of r.written) err(`wrote ${w}\n`);
        out(
          `rotate-certs: ${r.written.length} files written${reloaded === null ? "; restart libvirtd to use them" : reloaded.ok ? "; libvirtd reloaded them" : `; libvirtd did not reload them: ${reloaded.error}`}\n`,
        );
      }
      return reloaded && !reloaded.ok ? EXIT.failed : EXIT.ok;
    }
    case "leave": {
      const r = await app.clusterLeave(root);
      if (values.json) json(r);
      else
        out(
          r.status === "left"
            ? `left cluster ${r.cluster ?? "?"}${r.undoneRuns.length ? ` (${r.undoneRuns.length === 1 ? "run" : "runs"} ${r.undoneRuns.join(", ")} undone)` : " (no applied run to undo)"}\n`
            : `leave failed: ${r.failedRun ? `run ${r.failedRun}: ` : ""}${r.error ?? "undo failed"}\n`,
        );
      return r.status === "left" ? EXIT.ok : EXIT.failed;
    }
  }
}
