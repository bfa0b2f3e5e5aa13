// The cluster use cases on machine roots (no daemon): init makes the CA, authkey and a 0600 bundle,
// join takes it and issues the member's certificates from that CA; a bundle that is not one, or is
// another cluster's, and an answer that does not list this host, are input errors naming the file
// and key, with nothing written; `certs --check` sees a certificate that lacks an address; leave
// gives the host a lone CA again and forgets the cluster's files, and undoes every cluster run of the
// journal, not only the newest. Status's reasons come from
// libvirt's own messages.
import { X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runApply } from "../../src/app/apply.js";
import { clusterCerts, clusterInit, clusterJoin, clusterLeave } from "../../src/app/cluster.js";
import { reasonOf } from "../../src/app/cluster-status.js";
import { EventBus } from "../../src/apply/events.js";
import { InputError } from "../../src/core/errors.js";
import { pemBlocks } from "../../src/host/pki/pki.js";
import { PLAN_SCHEMA_ID, type Plan } from "../../src/plan/actions.js";
import { CLUSTER_PATHS } from "../../src/plan/cluster-plan.js";

let dir = "";
const answer = (members = ["kvm-a", "kvm-b"], name = "lab") =>
  [
    "version: 1",
    "cluster:",
    `  name: ${name}`,
    "  networks: { cluster: 192.0.2.0/24 }",
    "  members:",
    ...members.map((m, i) => `    - { host: ${m}, address: 192.0.2.${11 + i} }`),
    "",
  ].join("\n");

async function machine(name: string): Promise<string> {
  const root = path.join(dir, name);
  await mkdir(path.join(root, "proc/sys/kernel"), { recursive: true });
  await writeFile(path.join(root, "proc/sys/kernel/hostname"), `${name}\n`);
  return root;
}
const file = async (name: string, text: string) => {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
};
const at = (root: string, p: string) => path.join(root, p);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-cluster-app-${process.pid}-`));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("cluster init, join, certs and leave on machine roots", () => {
  it("init and join: one CA, each member's certificates from it naming its address, no secret in the result", async () => {
    const a = await machine("kvm-a");
    const b = await machine("kvm-b");
    const f = await file("lab.yaml", answer());
    const bundle = path.join(dir, "bundle.json");
    const ri = await clusterInit({ answerFile: f, root: a, bundleOut: bundle, apply: false });
    expect((await stat(bundle)).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(ri)).not.toMatch(/PRIVATE KEY/);
    expect(ri.plan.actions.map((x) => x.id)).toContain("cluster.libvirtd-conf");
    await clusterJoin({ answerFile: f, root: b, bundle, apply: false });
    const ca = await readFile(at(a, CLUSTER_PATHS.caCert), "utf8");
    expect(await readFile(at(b, "/etc/pki/CA/cacert.pem"), "utf8")).toBe(ca);
    const server = new X509Certificate(await readFile(at(b, "/etc/pki/libvirt/servercert.pem"), "utf8"));
    expect(server.checkIssued(new X509Certificate(ca))).toBe(true);
    expect(server.subjectAltName).toContain("IP Address:192.0.2.12");
    expect((await stat(at(b, CLUSTER_PATHS.authkey))).mode & 0o777).toBe(0o400);
    expect(await readFile(at(b, CLUSTER_PATHS.authkey))).toEqual(
      await readFile(at(a, CLUSTER_PATHS.authkey)),
    );
    expect((await clusterCerts({ root: b, addresses: [], check: true })).problems).toEqual([]);
    expect((await clusterCerts({ root: b, addresses: ["192.0.2.99"], check: true })).problems).toEqual([
      "servercert.pem: does not name 192.0.2.99",
    ]);
  }, 60_000);

  it("refuses a bad bundle, another cluster's bundle and a non-member, writing nothing", async () => {
    const c = await machine("kvm-c");
    const f = await file("lab-c.yaml", answer(["kvm-a", "kvm-c"]));
    const bad = await file("bad.json", '{"schema":"kvmstrap.cluster-bundle/1","cluster":"lab"}');
    await expect(clusterJoin({ answerFile: f, root: c, bundle: bad, apply: false })).rejects.toThrow(
      new InputError(`--bundle ${bad}: createdAt: Invalid input: expected string, received undefined`),
    );
    const other = await file("other.yaml", answer(["kvm-a", "kvm-c"], "other"));
    const bundle = path.join(dir, "bundle.json");
    await expect(clusterJoin({ answerFile: other, root: c, bundle, apply: false })).rejects.toThrow(
      `--bundle ${bundle}: it is cluster lab's, and the answer's cluster.name is other`,
    );
    const notMe = await file("not-me.yaml", answer(["kvm-a", "kvm-b"]));
    await expect(clusterJoin({ answerFile: notMe, root: c, bundle, apply: false })).rejects.toThrow(
      `${notMe}: cluster.members: this host (kvm-c) is not a member (members: kvm-a, kvm-b)`,
    );
    await expect(stat(at(c, "/etc"))).rejects.toThrow(/ENOENT/);
  }, 30_000);

  it("leave: a lone CA again, the cluster CA no longer trusted, the cluster's files gone", async () => {
    const b = path.join(dir, "kvm-b");
    const clusterCa = await readFile(at(b, CLUSTER_PATHS.caCert), "utf8");
    const r = await clusterLeave({ root: b });
    expect(r).toEqual({ cluster: "lab", undoneRuns: [], status: "left" });
    const trust = pemBlocks(await readFile(at(b, "/etc/pki/CA/cacert.pem"), "utf8"));
    expect(trust).toHaveLength(1);
    expect(trust[0]?.trim()).not.toBe(clusterCa.trim());
    await expect(stat(at(b, CLUSTER_PATHS.dir))).rejects.toThrow(/ENOENT/);
    await expect(stat(at(b, "/etc/pki/qemu/server-key.pem"))).rejects.toThrow(/ENOENT/);
    await expect(clusterLeave({ root: b })).rejects.toThrow("this host is in no cluster: nothing to leave");
  }, 30_000);
});

describe("cluster leave and the journal", () => {
  // A join run again on a converged member skips what the first did: its run holds none of the first
  // run's inverses, so leave undoes every cluster run not undone yet, newest first.
  it("undoes every applied cluster run, newest first", async () => {
    const root = path.join(dir, "two-runs");
    await mkdir(at(root, "/etc"), { recursive: true });
    await writeFile(at(root, "/etc/one.conf"), "before\n");
    const write = (id: string, p: string, content: string, previous: string | null): Plan => ({
      schema: PLAN_SCHEMA_ID,
      answerDigest: "",
      actions: [
        { kind: "write-file", id, path: p, content, mode: 0o644, previous, effect: "none", summary: id },
      ],
      refusals: [],
      needsReboot: false,
    });
    const first = await runApply(write("cluster.one", "/etc/one.conf", "cluster\n", "before\n"), {
      root,
      bus: new EventBus(),
      answer: null,
    });
    const second = await runApply(write("cluster.two", "/etc/two.conf", "two\n", null), {
      root,
      bus: new EventBus(),
      answer: null,
    });
    expect([first.status, second.status]).toEqual(["succeeded", "succeeded"]);
    const r = await clusterLeave({ root });
    expect(r).toEqual({ cluster: null, undoneRuns: [second.runId, first.runId], status: "left" });
    expect(await readFile(at(root, "/etc/one.conf"), "utf8")).toBe("before\n");
    await expect(stat(at(root, "/etc/two.conf"))).rejects.toThrow(/ENOENT/);
    await expect(clusterLeave({ root })).rejects.toThrow("this host is in no cluster: nothing to leave");
  }, 30_000);
});

describe("cluster status's reasons", () => {
  it("reads libvirt's messages", () => {
    expect(reasonOf("unable to connect to server at '10.0.0.2:16514': Connection refused", false)).toBe(
      "refused",
    );
    expect(reasonOf("unable to connect to server at '10.0.0.2:16514': No route to host", false)).toBe(
      "unreachable",
    );
    expect(reasonOf("authentication failed: Failed to verify peer's certificate", false)).toBe(
      "certificate-rejected",
    );
    expect(reasonOf("", true)).toBe("timeout");
  });
});
