// The cluster plan applied for real: two hosts with systemd as PID 1 (systemd-host.ts), one answer
// file of the README's shape, and the built CLI run inside each host as on a real member.
// - `cluster init` on A and `cluster join` on B, applied by the engine (no --no-apply): the socket
//   units, corosync and pacemaker come up in each host's own systemd; 16514 serves the certificate
//   the cluster CA issued, nothing listens on 16509; `cluster status --json` from A reaches both over
//   TLS and pacemaker's view is quorate with both nodes online (corosync-quorumtool agrees);
// - `cluster rotate-certs` on B: libvirtd re-reads its files through `virt-admin server-update-tls`
//   (libvirt's default /etc/pki paths, which these hosts have): the same libvirtd process serves the
//   new certificate;
// - `cluster join` again on B converges (the same libvirtd and corosync processes, no file written);
// - `cluster leave` on B: the inverses of both its runs run in B's systemd (corosync and pacemaker stopped
//   and back to the enablement they had: corosync still enabled as its package left it, pacemaker,
//   disabled by hand before, disabled again; the TLS socket off), libvirtd.conf, qemu.conf and
//   corosync.conf byte-identical to before init, the cluster's files and CA gone; A goes on alone,
//   quorate (two_node), B left cleanly (offline, not fenced).
import { X509Certificate } from "node:crypto";
import { readFile, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterStatus } from "../../src/app/cluster-status.js";
import { CLUSTER_PATHS } from "../../src/plan/cluster-plan.js";
import { COROSYNC_AUTHKEY, COROSYNC_CONF } from "../../src/plan/render/corosync-conf.js";
import { BIN, tcpProbe } from "./cli.js";
import { FENCE_AGENT } from "./ha-hosts.js";
import { until } from "./ha-rig.js";
import { type SystemdHost, type SystemdHosts, startSystemdHosts } from "./systemd-host.js";

let rig: SystemdHosts;
let a: SystemdHost;
let b: SystemdHost;
let answer = "";
let bundle = "";
const figures: string[] = [];
const VM = `db1-${process.pid}`;
/** B as it was before init: the files the plan writes and the units it enables. */
const before: Record<string, string | null> = {};
const FILES = [CLUSTER_PATHS.libvirtdConf, CLUSTER_PATHS.qemuConf, COROSYNC_CONF, COROSYNC_AUTHKEY];
const UNITS = ["corosync.service", "pacemaker.service", "libvirtd-tls.socket", "libvirtd-tcp.socket"];

const kvmstrap = (h: SystemdHost, ...args: string[]) => h.exec(["node", BIN, ...args]);
const fileIn = (h: SystemdHost, p: string) => readFile(path.join(h.root, p), "utf8").catch(() => null);
const unit = async (h: SystemdHost, verb: "is-active" | "is-enabled", u: string) =>
  (await h.exec(["systemctl", verb, u])).stdout.trim();
const mainPid = async (h: SystemdHost, u: string) =>
  (await h.exec(["systemctl", "show", "--value", "-p", "MainPID", u])).stdout.trim();
const libvirtdPid = (h: SystemdHost) => mainPid(h, "libvirtd.service");
const timed = async <T>(what: string, f: () => Promise<T>) => {
  const t = Date.now();
  const r = await f();
  figures.push(`${what} ${Date.now() - t} ms`);
  return r;
};

/** `cluster status --json` run on H. */
async function status(h: SystemdHost): Promise<{ code: number; s: ClusterStatus }> {
  const r = await kvmstrap(h, "cluster", "status", "--json");
  return { code: r.exitCode, s: JSON.parse(r.stdout) as ClusterStatus };
}

/** What H's 16514 presents to a client holding A's cluster client certificate. */
function served(
  h: SystemdHost,
): Promise<{ authorized: boolean; error?: string; fp: string; serial: string }> {
  return Promise.all(
    ["cacert.pem", "clientcert.pem", "clientkey.pem"].map((f) =>
      readFile(path.join(a.root, CLUSTER_PATHS.clientDir, f), "utf8"),
    ),
  ).then(
    ([ca, cert, key]) =>
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: h.address, port: 16514, ca, cert, key, rejectUnauthorized: false });
        s.setTimeout(5000, () => s.destroy(new Error("timeout")));
        s.on("secureConnect", () => {
          const peer = s.getPeerCertificate();
          resolve({
            authorized: s.authorized,
            ...(s.authorizationError ? { error: String(s.authorizationError) } : {}),
            fp: peer.fingerprint256,
            serial: peer.serialNumber,
          });
          s.destroy();
        });
        s.on("error", reject);
      }),
  );
}

beforeAll(async () => {
  rig = await startSystemdHosts();
  [a, b] = rig.hosts as [SystemdHost, SystemdHost];
  figures.push(`hosts booted under systemd: ${rig.hosts.map((h) => `${h.name} ${h.bootMs} ms`).join(", ")}`);
  // The README's shape: members fenced, an NFS store, one HA VM preferring A.
  const fence = `{ agent: other, name: ${FENCE_AGENT}, options: { ip: ${rig.net}.254, ipport: "8999" } }`;
  answer = path.join(rig.dir, "cluster.yaml");
  bundle = path.join(rig.dir, "rack1.bundle");
  await writeFile(
    answer,
    [
      "version: 1",
      "cluster:",
      "  name: rack1",
      `  networks: { cluster: ${rig.net}.0/24 }`,
      "  members:",
      ...rig.hosts.map((h) => `    - { host: ${h.name}, address: ${h.address}, fence: ${fence} }`),
      "  storage:",
      `    - { name: nas1, type: nfs, server: ${rig.net}.5, export: /srv/nas1 }`,
      "  ha:",
      `    vms: [{ vm: ${VM}, policy: migrate, prefer: kvmcl-a }]`,
      "vms:",
      `  - { name: ${VM}, image: debian-12, vcpus: 1, memoryMiB: 64, diskGiB: 1, store: { name: nas1, volume: ${VM}.raw }, user: { name: ops } }`,
      "",
    ].join("\n"),
  );
  // A running host's libvirtd (socket activation starts it on first use, as on a host).
  for (const h of rig.hosts) expect((await h.exec(["virsh", "-q", "hostname"])).stdout.trim()).toBe(h.name);
  // B's pacemaker disabled by hand, its corosync enabled as the package left it: leave must disable
  // only the unit the plan enabled.
  expect((await b.exec(["systemctl", "disable", "pacemaker.service"])).exitCode).toBe(0);
  for (const f of FILES) before[f] = await fileIn(b, f);
  for (const u of UNITS) before[u] = await unit(b, "is-enabled", u);
}, 90_000);

afterAll(async () => {
  await rig?.stop();
  console.log(`applied cluster figures:\n  ${figures.join("\n  ")}`);
});

describe("the cluster plan applied by the engine in each host's own systemd", () => {
  it("init on A and join on B, applied: TLS sockets, corosync and pacemaker up, 16509 closed", async () => {
    const init = await timed("cluster init (applied) on A", () =>
      kvmstrap(a, "cluster", "init", "--answer", answer, "--bundle-out", bundle),
    );
    expect(init.exitCode, `${init.stdout}\n${init.stderr}`).toBe(0);
    const join = await timed("cluster join (applied) on B", () =>
      kvmstrap(b, "cluster", "join", "--answer", answer, "--bundle", bundle),
    );
    expect(join.exitCode, `${join.stdout}\n${join.stderr}`).toBe(0);
    for (const h of [a, b]) {
      expect([h.name, await unit(h, "is-active", "libvirtd-tls.socket")]).toEqual([h.name, "active"]);
      expect([h.name, await unit(h, "is-active", "libvirtd-tcp.socket")]).toEqual([h.name, "inactive"]);
      expect([h.name, await unit(h, "is-active", "corosync.service")]).toEqual([h.name, "active"]);
      expect([h.name, await unit(h, "is-active", "pacemaker.service")]).toEqual([h.name, "active"]);
      expect(await fileIn(h, CLUSTER_PATHS.libvirtdConf)).toContain("# BEGIN kvmstrap cluster");
      expect(await fileIn(h, CLUSTER_PATHS.qemuConf)).toContain("# BEGIN kvmstrap cluster");
      expect(await fileIn(h, CLUSTER_PATHS.qemuConf)).toContain(`migration_address = "${h.address}"`);
      expect(await tcpProbe(h.address, 16509)).toBe("ECONNREFUSED");
    }
  });

  it("16514 presents the certificate the cluster CA issued; status from A reaches both, quorate", async () => {
    const ca = (JSON.parse(await readFile(bundle, "utf8")) as { caCert: string }).caCert;
    for (const h of [a, b]) {
      const s = await served(h);
      expect(s.authorized, s.error).toBe(true);
      const file = await fileIn(h, "/etc/pki/libvirt/servercert.pem");
      const cert = new X509Certificate(file ?? "");
      expect(s.fp).toBe(cert.fingerprint256);
      expect(cert.checkIssued(new X509Certificate(ca))).toBe(true);
    }
    const formed = Date.now();
    await until(
      "corosync quorate with both members",
      async () => {
        const q = await a.exec(["corosync-quorumtool", "-s"]);
        return /Quorate:\s+Yes/.test(q.stdout) && /Nodes:\s+2\b/.test(q.stdout) ? q : undefined;
      },
      60_000,
    );
    figures.push(`join to corosync quorate with 2 members ${Date.now() - formed} ms`);
    const { s } = await until(
      "both members online and quorate in pacemaker's view",
      async () => {
        const r = await status(a);
        return r.code === 0 && r.s.ha?.quorate && r.s.ha.nodes.every((n) => n.online) ? r : undefined;
      },
      60_000,
    );
    figures.push(`join to pacemaker quorate with both online ${Date.now() - formed} ms`);
    expect(s.members.map((m) => [m.host, m.reachable, m.libvirt?.hostname, m.libvirt?.hostUuid])).toEqual([
      [a.name, true, a.name, a.hostUuid],
      [b.name, true, b.name, b.hostUuid],
    ]);
    expect(s.ha?.nodes.map((n) => [n.name, n.online, n.unclean])).toEqual([
      [a.name, true, false],
      [b.name, true, false],
    ]);
  });

  it("rotate-certs on B: the same libvirtd serves the new certificate (virt-admin server-update-tls)", async () => {
    const pid = await libvirtdPid(b);
    expect(Number(pid)).toBeGreaterThan(0);
    const old = await served(b);
    const r = await timed("rotate-certs on B", () => kvmstrap(b, "cluster", "rotate-certs"));
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stdout).toContain("libvirtd reloaded them");
    const now = await served(b);
    const file = new X509Certificate((await fileIn(b, "/etc/pki/libvirt/servercert.pem")) ?? "");
    expect(now.authorized, now.error).toBe(true);
    expect(now.serial).not.toBe(old.serial);
    expect(now.fp).toBe(file.fingerprint256);
    expect(await libvirtdPid(b)).toBe(pid);
    const { code, s } = await status(a);
    expect(code).toBe(0);
    expect(s.members.map((m) => m.reachable)).toEqual([true, true]);
  });

  it("join again on B converges: nothing written or restarted (the same libvirtd and corosync)", async () => {
    const pids = async () => [await libvirtdPid(b), await mainPid(b, "corosync.service")];
    const was = await pids();
    const files = await Promise.all(FILES.map((f) => fileIn(b, f)));
    const r = await timed("cluster join again on B", () =>
      kvmstrap(b, "cluster", "join", "--answer", answer, "--bundle", bundle),
    );
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(r.stderr).toContain("certificates: kept (complete)");
    expect(await pids()).toEqual(was);
    expect(await Promise.all(FILES.map((f) => fileIn(b, f)))).toEqual(files);
  });

  it("leave on B: its inverses run in B's systemd, its files as before init; A goes on alone", async () => {
    const clusterCa = (await fileIn(b, CLUSTER_PATHS.caCert)) ?? "";
    const r = await timed("cluster leave on B", () => kvmstrap(b, "cluster", "leave"));
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).toBe(0);
    // Both B's runs (the join and the converged one after it), newest first.
    expect(r.stdout).toMatch(/left cluster rack1 \(runs \S+, \S+ undone\)/);
    for (const u of ["corosync.service", "pacemaker.service", "libvirtd-tls.socket"])
      expect([u, await unit(b, "is-active", u)]).toEqual([u, "inactive"]);
    expect([before["corosync.service"], before["pacemaker.service"]]).toEqual(["enabled", "disabled"]);
    for (const u of UNITS) expect([u, await unit(b, "is-enabled", u)]).toEqual([u, before[u]]);
    for (const f of FILES) expect([f, await fileIn(b, f)]).toEqual([f, before[f]]);
    expect(await stat(path.join(b.root, CLUSTER_PATHS.dir)).catch(() => null)).toBeNull();
    expect(await fileIn(b, "/etc/pki/CA/cacert.pem")).not.toBe(clusterCa);
    expect(await tcpProbe(b.address, 16514)).toBe("ECONNREFUSED");
    // A alone: corosync's two_node keeps it quorate; B left cleanly (offline, never fenced).
    const s = await until(
      "A sees B offline",
      async () => {
        const x = await status(a);
        return x.s.ha?.nodes.find((n) => n.name === b.name)?.online === false ? x.s : undefined;
      },
      30_000,
    );
    expect(s.members.map((m) => [m.host, m.reachable, m.reason])).toEqual([
      [a.name, true, undefined],
      [b.name, false, "refused"],
    ]);
    expect(s.ha?.quorate).toBe(true);
    expect(s.ha?.nodes.map((n) => [n.name, n.online, n.unclean])).toEqual([
      [a.name, true, false],
      [b.name, false, false],
    ]);
    expect(s.ha?.fencing).toEqual([]);
    const q = await a.exec(["corosync-quorumtool", "-s"]);
    expect(q.stdout).toMatch(/Quorate:\s+Yes/);
    expect(q.stdout).toMatch(/Nodes:\s+1\b/);
  });
});
