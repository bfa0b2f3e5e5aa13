// The cluster's Ceph RBD stores as plan actions (src/plan/rbd-plan.ts): one golden plan per case
// (test/plan/golden-rbd/, reviewed). The cephx key is only ever a file's path in the plan: virsh
// reads the file at apply. The secret's uuid is the same on every member (a migrated VM's disk names
// it), and every action that changes libvirt has its inverse.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { PLAN_SCHEMA_ID, type Plan } from "../../src/plan/actions.js";
import type { PlanContext } from "../../src/plan/context.js";
import { renderPlanText } from "../../src/plan/diff.js";
import {
  planRbdStorage,
  planRbdVmDisk,
  type RbdStore,
  rbdDisk,
  rbdQemuTarget,
  renderRbdPoolXml,
} from "../../src/plan/rbd-plan.js";
import { renderNetworkDiskXml, secretUuidFor } from "../../src/vm/network-disk.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

const answerOf = (storage: string) =>
  parseAnswerText(
    `version: 1
cluster:
  name: rack1
  networks: { cluster: 192.0.2.0/24 }
  members:
    - { host: kvm-a, address: 192.0.2.11 }
    - { host: kvm-b, address: 192.0.2.12 }
  storage:
${storage}`,
    "answer.yaml",
  );

function plan(storage: string, host = "kvm-a", current = new Map<string, string | null>()): Plan {
  const ctx: PlanContext = {
    report: { ...lab, hostname: host },
    answer: answerOf(storage),
    current,
    actions: [],
    refusals: [],
    findings: [],
  };
  planRbdStorage(ctx);
  return { schema: PLAN_SCHEMA_ID, answerDigest: "", actions: ctx.actions, refusals: [], needsReboot: false };
}

const ONE = `    - { name: ceph1, type: rbd, monitors: [192.0.2.61, 192.0.2.62, 192.0.2.63], pool: vms, keyFile: /etc/kvmstrap/secrets/ceph1.key }
`;
const TWO = `${ONE}    - { name: cold, type: rbd, monitors: ["2001:db8::61"], pool: archive, user: archiver, keyFile: /root/cold.key }
    - { name: nfs1, type: nfs, server: 192.0.2.50, export: /srv/vms }
`;

describe("rbd stores in the plan", () => {
  it("one store: the secret (file, define, value from the key file) and the rbd pool, each with its inverse", async () => {
    const p = plan(ONE);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-rbd/one-store.txt");
    const uuid = secretUuidFor("rack1", "ceph1");
    const byId = new Map(p.actions.map((a) => [a.id, a]));
    const define = byId.get("cluster.storage.ceph1.secret.define");
    expect(define?.kind === "run-command" && [define.argv, define.undo, define.check]).toEqual([
      ["virsh", "secret-define", "/etc/kvmstrap/libvirt/secret-ceph1.xml"],
      ["virsh", "secret-undefine", uuid],
      ["virsh", "secret-dumpxml", uuid],
    ]);
    const value = byId.get("cluster.storage.ceph1.secret.value");
    expect(value?.kind === "run-command" && value.argv).toEqual([
      "virsh",
      "secret-set-value",
      "--secret",
      uuid,
      "--file",
      "/etc/kvmstrap/secrets/ceph1.key",
    ]);
    const xml = byId.get("cluster.storage.ceph1.secret.xml");
    expect(xml?.kind === "write-file" && xml.content).toContain('<usage type="ceph">');
    expect(xml?.kind === "write-file" && xml.content).toContain('private="yes"');
    const pool = byId.get("cluster.storage.ceph1.pool.xml");
    await expect(pool?.kind === "write-file" && pool.content).toMatchFileSnapshot(
      "./golden-rbd/ceph1-pool.xml",
    );
    for (const a of p.actions)
      if (a.kind === "run-command" && a.argv[1] !== "secret-set-value") expect(a.undo, a.id).not.toBeNull();
  });

  it("two rbd stores beside an nfs one: each its own secret uuid, user and usage name; nfs left to its planner", async () => {
    const p = plan(TWO);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-rbd/two-stores.txt");
    expect(p.actions.some((a) => a.id.includes("nfs1"))).toBe(false);
    const a = secretUuidFor("rack1", "ceph1");
    const b = secretUuidFor("rack1", "cold");
    expect(a).not.toBe(b);
    const coldPool = p.actions.find((x) => x.id === "cluster.storage.cold.pool.xml");
    expect(coldPool?.kind === "write-file" && coldPool.content).toContain(
      `<auth type="ceph" username="archiver">\n      <secret uuid="${b}"/>`,
    );
  });

  it("every member plans the same secret uuid and files (a migrated VM's disk finds its secret)", () => {
    const strip = (p: Plan) => JSON.stringify(p.actions);
    expect(strip(plan(ONE, "kvm-a"))).toBe(strip(plan(ONE, "kvm-b")));
  });

  it("planned again over its files: only the checked commands and the value are left", () => {
    const first = plan(ONE);
    const current = new Map(
      first.actions.flatMap((x) => (x.kind === "write-file" ? [[x.path, x.content] as const] : [])),
    );
    const again = plan(ONE, "kvm-a", current);
    expect(again.actions.map((x) => x.id)).toEqual([
      "cluster.storage.ceph1.secret.define",
      "cluster.storage.ceph1.secret.value",
      "cluster.storage.ceph1.pool.define",
      "cluster.storage.ceph1.pool.start",
      "cluster.storage.ceph1.pool.autostart",
    ]);
  });

  it("a VM disk on the store is a network disk naming the secret by uuid, never a key", async () => {
    const store = answerOf(ONE).cluster?.storage[0];
    if (store?.type !== "rbd") throw new Error("no rbd store");
    const xml = renderNetworkDiskXml(rbdDisk("rack1", store, "web-root", "vda"));
    await expect(`${xml}\n`).toMatchFileSnapshot("./golden-rbd/web-root-disk.xml");
    expect(xml).toContain(`<secret type="ceph" uuid="${secretUuidFor("rack1", "ceph1")}"/>`);
    expect(renderRbdPoolXml(store, secretUuidFor("rack1", "ceph1"))).not.toContain("keyFile");
  });

  it("VM disks on a store: the base image converted in once, a clone per VM grown to its size; undo deletes them", async () => {
    const stores = answerOf(TWO).cluster?.storage ?? [];
    const [ceph1, cold] = stores as [RbdStore, RbdStore];
    const ctx: PlanContext = {
      report: lab,
      answer: answerOf(TWO),
      current: new Map(),
      actions: [],
      refusals: [],
      findings: [],
    };
    const GiB = 2 ** 30;
    const web = planRbdVmDisk(ctx, "rack1", ceph1, {
      name: "web",
      imagePath: "/var/cache/kvmstrap/images/debian-12.qcow2",
      sizeBytes: 20 * GiB,
    });
    planRbdVmDisk(ctx, "rack1", ceph1, {
      name: "db",
      imagePath: "/var/cache/kvmstrap/images/debian-12.qcow2",
      sizeBytes: 40 * GiB,
    });
    planRbdVmDisk(ctx, "rack1", cold, {
      name: "tape",
      imagePath: "/srv/images/tape:v2.raw",
      sizeBytes: 8 * GiB,
      target: "vdb",
    });
    const p: Plan = {
      schema: PLAN_SCHEMA_ID,
      answerDigest: "",
      actions: ctx.actions,
      refusals: [],
      needsReboot: false,
    };
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-rbd/vm-disks.txt");
    // One base conversion for web and db, one for tape.
    expect(p.actions.filter((a) => a.id.includes(".base.")).length).toBe(2);
    expect(web).toMatchObject({ protocol: "rbd", name: "vms/web-root", target: "vda" });
    for (const a of p.actions)
      if (a.kind === "run-command" && !/(disk-size|pool-refresh)$/.test(a.id))
        expect(a.undo, a.id).not.toBeNull();
    // The key file's path is in qemu-img's argv, never the key; colons escaped for qemu's rbd: syntax.
    expect(rbdQemuTarget(cold, "x")).toBe(
      "rbd:archive/x:id=archiver:keyfile=/root/cold.key:mon_host=[2001\\:db8\\:\\:61]",
    );
  });

  it("no cluster section, or no rbd store: nothing planned", () => {
    expect(plan(`    - { name: nfs1, type: nfs, server: 192.0.2.50, export: /srv/vms }\n`).actions).toEqual(
      [],
    );
  });
});
