// Trust between members made by kvmstrap itself: the built CLI's `cluster init` on A (under A's
// machine root) makes the cluster CA, the authkey and the join bundle; `cluster join` on B takes the
// bundle. Both libvirtds then start on what kvmstrap wrote: their certificates, and libvirtd.conf's
// and qemu.conf's TLS settings as the cluster plan renders them (cluster-plan.ts, paths moved under
// each root). `cluster status` from each member reaches both over TLS with its client certificate;
// a client without a certificate, or with one from another CA, is refused; nothing listens on plain
// TCP 16509. Then a CA rotation (rotate-certs --new-ca on A, --bundle on B) and both libvirtds
// started again on the rotated files: both still reach each other, and A's old client certificate
// no longer opens B. (libvirt 9's `virt-admin server-update-tls`, which rotate-certs runs on a real
// host, re-reads only libvirt's default paths, /etc/pki, which these namespaced daemons cannot have
// without writing the machine's own /etc: so here the daemons restart instead.)
import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import tls from "node:tls";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { migrationAddressOf } from "../../src/answer/rules/cluster.js";
import type { ClusterMember } from "../../src/answer/schema-cluster.js";
import { pkiInit } from "../../src/app/pki.js";
import {
  CLUSTER_PATHS,
  clusterLibvirtdSettings,
  clusterQemuSettings,
  withClusterBlock,
} from "../../src/plan/cluster-plan.js";
import { tcpProbe } from "./cli.js";
import { type Cluster, type HostPki, startCluster } from "./hosts.js";

const run = promisify(execFile);
const CLI = path.join(import.meta.dirname, "../../bin/kvmstrap.js");

type CliResult = { code: number; stdout: string; stderr: string };
async function kvmstrap(args: string[]): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, LC_ALL: "C" } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? -1, stdout: x.stdout ?? "", stderr: x.stderr ?? "" };
  }
}

let cluster: Cluster;
// Outside the rig's directory: the roots outlive a restart of the two daemons.
let dir = "";
let made: [HostPki, HostPki] | null = null;
const roots: Record<string, string> = {};
let bundleText = "";
let cliOutput = "";

// The cluster's trust and settings, made by kvmstrap on each host's machine root.
async function kvmstrapPki(
  _rig: string,
  hosts: { name: string; address: string }[],
  net: string,
): Promise<[HostPki, HostPki]> {
  if (made) return made;
  const d = await mkdtemp(path.join(tmpdir(), `kvmstrap-cljoin-${process.pid}-`));
  dir = d;
  const answer = path.join(d, "cluster.yaml");
  await writeFile(
    answer,
    [
      "version: 1",
      "cluster:",
      "  name: lab",
      `  networks: { cluster: ${net}.0/24 }`,
      "  members:",
      ...hosts.map((h) => `    - { host: ${h.name}, address: ${h.address} }`),
      "",
    ].join("\n"),
  );
  const out: HostPki[] = [];
  for (const [i, h] of hosts.entries()) {
    const root = path.join(d, `${h.name}-root`);
    roots[h.name] = root;
    await mkdir(path.join(root, "proc/sys/kernel"), { recursive: true });
    await writeFile(path.join(root, "proc/sys/kernel/hostname"), `${h.name}\n`);
    const bundle = path.join(d, "join-bundle.json");
    const args =
      i === 0
        ? ["cluster", "init", "--answer", answer, "--root", root, "--bundle-out", bundle, "--no-apply"]
        : ["cluster", "join", "--answer", answer, "--root", root, "--bundle", bundle, "--no-apply"];
    const r = await kvmstrap(args);
    if (r.code !== 0) throw new Error(`kvmstrap ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
    cliOutput += r.stdout + r.stderr;
    if (i === 0) bundleText = await readFile(bundle, "utf8");
    const under = (p: string) => path.join(root, p);
    const self: ClusterMember = { host: h.name, address: h.address };
    out.push({
      root,
      clientDir: under(CLUSTER_PATHS.clientDir),
      qemuDir: under(CLUSTER_PATHS.qemuTlsDir),
      // What the plan writes into libvirtd.conf and qemu.conf, its paths under this root.
      libvirtdConf: withClusterBlock(
        "",
        clusterLibvirtdSettings({ dir: under("/etc/pki/libvirt"), caCert: under("/etc/pki/CA/cacert.pem") }),
      ),
      qemuConf: withClusterBlock("", clusterQemuSettings(self, under(CLUSTER_PATHS.qemuTlsDir))),
    });
    expect(migrationAddressOf(self)).toBe(h.address);
  }
  made = [out[0] as HostPki, out[1] as HostPki];
  return made;
}

beforeAll(async () => {
  cluster = await startCluster({ pki: kvmstrapPki });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type Status = {
  cluster: string;
  self: string;
  members: {
    host: string;
    reachable: boolean;
    reason?: string;
    libvirt?: { hostname: string; hostUuid: string | null };
  }[];
};
const status = async (root: string) => {
  const r = await kvmstrap(["cluster", "status", "--root", root, "--json"]);
  return { code: r.code, s: JSON.parse(r.stdout) as Status };
};

/** A TLS client with the cluster CA and no certificate of its own: what happens when it speaks. */
function noCertClient(address: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: address,
      port: 16514,
      ca: bundleCa(),
      checkServerIdentity: () => undefined,
    });
    const done = (what: string) => {
      socket.destroy();
      resolve(what);
    };
    socket.setTimeout(5000, () => done("timeout"));
    socket.on("secureConnect", () => socket.write(Buffer.alloc(28)));
    socket.on("data", () => done("answered"));
    socket.on("error", (e) => done(`error: ${e.message}`));
    socket.on("close", () => done("closed"));
  });
}
const bundleCa = () => (JSON.parse(bundleText) as { caCert: string }).caCert;

describe("kvmstrap cluster init and join on two hosts", () => {
  it("writes the join bundle 0600, and never prints the CA key or the authkey", async () => {
    const st = await stat(path.join(dir, "join-bundle.json"));
    expect(st.mode & 0o777).toBe(0o600);
    const b = JSON.parse(bundleText) as { caKey: string; authkey: string; cluster: string };
    expect(b.cluster).toBe("lab");
    expect(cliOutput).not.toContain("PRIVATE KEY");
    expect(cliOutput).not.toContain(b.authkey.slice(0, 40));
    for (const name of ["kvmcl-a", "kvmcl-b"]) {
      const key = await stat(path.join(roots[name] ?? "", CLUSTER_PATHS.authkey));
      expect(key.mode & 0o777).toBe(0o400);
    }
  });

  it("status from each member reaches both over TLS with its client certificate", async () => {
    for (const [from, root] of Object.entries(roots)) {
      const { code, s } = await status(root);
      expect(code, from).toBe(0);
      expect(s.self).toBe(from);
      expect(s.members.map((m) => [m.host, m.reachable, m.libvirt?.hostname])).toEqual([
        ["kvmcl-a", true, "kvmcl-a"],
        ["kvmcl-b", true, "kvmcl-b"],
      ]);
      expect(s.members.map((m) => m.libvirt?.hostUuid)).toEqual([
        "6a0b3f7e-0000-4000-8000-00000000000a",
        "6a0b3f7e-0000-4000-8000-00000000000b",
      ]);
    }
  });

  it("status says why a member is not reachable: refused where nothing listens on 16514", async () => {
    const net = cluster.a.address.split(".").slice(0, 3).join(".");
    const f = path.join(dir, "with-a-dead-member.yaml");
    await writeFile(
      f,
      `version: 1\ncluster:\n  name: lab\n  networks: { cluster: ${net}.0/24 }\n  members:\n    - { host: kvmcl-a, address: ${net}.1 }\n    - { host: kvmcl-x, address: ${net}.254 }\n`,
    );
    const r = await kvmstrap([
      "cluster",
      "status",
      "--root",
      roots["kvmcl-a"] ?? "",
      "--answer",
      f,
      "--json",
    ]);
    expect(r.code).toBe(1);
    const s = JSON.parse(r.stdout) as Status;
    expect(s.members.map((m) => [m.host, m.reachable, m.reason])).toEqual([
      ["kvmcl-a", true, undefined],
      ["kvmcl-x", false, "refused"],
    ]);
  });

  it("refuses a client without a certificate, and one whose certificate another CA issued", async () => {
    expect(await noCertClient(cluster.b.address)).toMatch(/^(closed|error: .*)$/);
    const other = path.join(dir, "lone-host");
    await pkiInit({ root: other, hostname: "stranger", addresses: ["192.0.2.1"] });
    const client = path.join(dir, "stranger-client");
    await mkdir(client, { recursive: true });
    await cp(
      path.join(roots["kvmcl-a"] ?? "", CLUSTER_PATHS.clientDir, "cacert.pem"),
      `${client}/cacert.pem`,
    );
    await cp(path.join(other, "etc/pki/libvirt/clientcert.pem"), `${client}/clientcert.pem`);
    await cp(path.join(other, "etc/pki/libvirt/private/clientkey.pem"), `${client}/clientkey.pem`);
    const r = await run(
      "virsh",
      ["-c", `qemu+tls://${cluster.b.address}/system?pkipath=${client}`, "hostname"],
      {
        env: { LC_ALL: "C" },
        timeout: 10_000,
      },
    ).then(
      () => "connected",
      (e: { stderr?: string }) => e.stderr ?? "",
    );
    expect(r).not.toBe("connected");
    expect(r).toMatch(/certificate|TLS|handshake/i);
  });

  it("nothing listens on plain TCP 16509", async () => {
    for (const address of [cluster.a.address, cluster.b.address]) {
      const result = await tcpProbe(address, 16509);
      expect(result, address).toBe("ECONNREFUSED");
    }
  });

  it("a CA rotation: both still reach each other, and A's old client certificate no longer opens B", async () => {
    const rootA = roots["kvmcl-a"] ?? "";
    const rootB = roots["kvmcl-b"] ?? "";
    const old = path.join(dir, "old-client-a");
    await cp(path.join(rootA, CLUSTER_PATHS.clientDir), old, { recursive: true });
    const nb = path.join(dir, "new-ca-bundle.json");
    const ra = await kvmstrap(["cluster", "rotate-certs", "--new-ca", "--bundle-out", nb, "--root", rootA]);
    expect(
      ra.code,
      `${ra.stdout}\n${ra.stderr
        .split("\n")
        .filter((l) => !l.startsWith("wrote "))
        .join("\n")}`,
    ).toBe(0);
    expect(ra.stdout).toContain("restart libvirtd to use them");
    const rb = await kvmstrap(["cluster", "rotate-certs", "--bundle", nb, "--root", rootB]);
    expect(rb.code, rb.stderr).toBe(0);
    await cluster.stop();
    cluster = await startCluster({ pki: kvmstrapPki });
    for (const root of [rootA, rootB]) {
      const { s } = await status(root);
      expect(s.members.map((m) => m.reachable)).toEqual([true, true]);
    }
    // The old client trusts the new CA, so only B's verdict on its certificate can stop it.
    await writeFile(
      path.join(old, "cacert.pem"),
      (JSON.parse(await readFile(nb, "utf8")) as { caCert: string }).caCert,
    );
    const r = await run(
      "virsh",
      ["-c", `qemu+tls://${cluster.b.address}/system?pkipath=${old}`, "hostname"],
      {
        env: { LC_ALL: "C" },
        timeout: 10_000,
      },
    ).then(
      () => "connected",
      (e: { stderr?: string }) => e.stderr ?? "",
    );
    expect(r).not.toBe("connected");
    expect(r).toMatch(/certificate|TLS|handshake|authentication|closed|reset/i);
  });
});
