// The cluster: section's plan on a member: its certificates from the cluster CA, corosync's authkey,
// libvirtd.conf (TLS only) and qemu.conf (migration and NBD over TLS) in a managed block whose undo
// restores each file, the TLS socket on and the TCP socket off, libvirtd restarted with its sockets
// after the write and on undo after the restore; nothing when the rule set refused the section.
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadAnswerFile } from "../../src/answer/load.js";
import type { Answer } from "../../src/answer/schema.js";
import type { HostReport } from "../../src/detect/types.js";
import { CLUSTER_PATHS, withClusterBlock } from "../../src/plan/cluster-plan.js";
import { buildPlan } from "../../src/plan/index.js";
import { LIBVIRTD_SOCKETS_RESTART } from "../../src/plan/libvirtd-sockets.js";
import { labReport } from "../answer/hosts.js";

const cases = path.join(import.meta.dirname, "../answer/cluster-cases");
let lab: HostReport;
let answer: Answer;
beforeAll(async () => {
  lab = { ...(await labReport()), hostname: "kvm-b" };
  answer = await loadAnswerFile(path.join(cases, "valid-two-node", "answer.yaml"));
});

const LIBVIRTD = "#listen_tls = 0\nlisten_tcp = 1\nlog_level = 3\n";
const QEMU = 'user = "libvirt-qemu"\n#nbd_tls = 0\n';
const current = () =>
  new Map([
    [CLUSTER_PATHS.libvirtdConf, LIBVIRTD],
    [CLUSTER_PATHS.qemuConf, QEMU],
  ]);

describe("the cluster plan", () => {
  it("plans this member's trust, TLS-only libvirtd, TLS migration and the authkey, in order", () => {
    const plan = buildPlan(lab, answer, current());
    const cluster = plan.actions.filter((a) => a.id.startsWith("cluster."));
    expect(cluster.map((a) => a.id)).toEqual([
      "cluster.certs",
      "cluster.corosync-authkey",
      "cluster.libvirtd-restart-on-undo",
      "cluster.libvirtd-conf",
      "cluster.qemu-conf",
      "cluster.tcp-socket",
      "cluster.tls-socket",
      "cluster.libvirtd-restart",
    ]);
    const certs = cluster[0];
    expect(certs?.kind === "run-command" && certs.argv).toEqual([
      "kvmstrap",
      "cluster",
      "certs",
      "--address",
      "192.0.2.12",
      "--address",
      "198.51.100.12",
    ]);
    // The TLS socket is only enabled: systemd refuses to start a socket of a running libvirtd, so
    // the restart stops libvirtd with its sockets, starts the enabled ones, then libvirtd again.
    expect(cluster.find((a) => a.id === "cluster.tls-socket")).toMatchObject({
      argv: ["systemctl", "enable", "libvirtd-tls.socket"],
      undo: ["systemctl", "disable", "--now", "libvirtd-tls.socket"],
    });
    expect(cluster.find((a) => a.id === "cluster.tcp-socket")).toMatchObject({
      argv: ["systemctl", "disable", "--now", "libvirtd-tcp.socket"],
      undo: ["systemctl", "enable", "libvirtd-tcp.socket"],
    });
    expect(cluster.find((a) => a.id === "cluster.libvirtd-restart")).toMatchObject({
      argv: LIBVIRTD_SOCKETS_RESTART,
      check: null,
    });
    expect(cluster.find((a) => a.id === "cluster.libvirtd-restart-on-undo")).toMatchObject({
      undo: LIBVIRTD_SOCKETS_RESTART,
    });
    const key = cluster[1];
    expect(key?.kind === "run-command" && key.undo).toEqual(["rm", "-f", "/etc/corosync/authkey"]);
    const conf = cluster.find((a) => a.id === "cluster.libvirtd-conf");
    if (conf?.kind !== "write-file") throw new Error("no libvirtd.conf write");
    expect(conf.previous).toBe(LIBVIRTD);
    expect(conf.content).toContain("#kvmstrap-cluster# listen_tcp = 1\n");
    expect(conf.content).toMatch(
      /listen_tls = 1\nlisten_tcp = 0\ntls_no_verify_certificate = 0\nauth_tls = "none"\n/,
    );
    const qemu = cluster.find((a) => a.id === "cluster.qemu-conf");
    if (qemu?.kind !== "write-file") throw new Error("no qemu.conf write");
    expect(qemu.content).toContain('default_tls_x509_cert_dir = "/etc/pki/qemu"\n');
    expect(qemu.content).toContain("migrate_tls_x509_verify = 1\nmigrate_tls_force = 1\nnbd_tls = 1\n");
    expect(qemu.content).toContain('migration_address = "198.51.100.12"\n');
    // The block's removal gives back the file as it was (what undo's restore of `previous` holds).
    expect(withClusterBlock(conf.content, [])).toBe(LIBVIRTD);
    expect(withClusterBlock(qemu.content, [])).toBe(QEMU);
    // HA comes after the trust it needs (corosync.conf names the authkey placed before it).
    const ids = plan.actions.map((a) => a.id);
    expect(ids.indexOf("ha.corosync-conf")).toBeGreaterThan(ids.indexOf("cluster.corosync-authkey"));
    // No secret in the plan: the CA key and the authkey stay on the host.
    expect(JSON.stringify(plan)).not.toMatch(/PRIVATE KEY/);
  });

  it("a second plan over the written files changes no file, and restarts only where TLS does not listen", () => {
    const first = buildPlan(lab, answer, current());
    const written = new Map<string, string>(current());
    for (const a of first.actions) if (a.kind === "write-file") written.set(a.path, a.content);
    const actions = buildPlan(lab, answer, written).actions.filter((a) => a.id.startsWith("cluster."));
    expect(actions.map((a) => a.id)).toEqual([
      "cluster.certs",
      "cluster.corosync-authkey",
      "cluster.tcp-socket",
      "cluster.tls-socket",
      "cluster.libvirtd-restart",
    ]);
    expect(actions.at(-1)).toMatchObject({
      check: ["systemctl", "is-active", "--quiet", "libvirtd-tls.socket"],
    });
  });

  it("a host that is not a member plans nothing of the section", () => {
    const plan = buildPlan({ ...lab, hostname: "kvm-z" }, answer, current());
    expect(plan.actions.filter((a) => a.id.startsWith("cluster."))).toEqual([]);
    expect(plan.refusals).toContainEqual(expect.objectContaining({ ruleId: "cluster.self" }));
  });
});
