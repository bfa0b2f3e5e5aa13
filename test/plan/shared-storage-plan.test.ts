// The cluster's iSCSI and NFS stores as plan actions on one member: one golden file per case
// (test/plan/golden-shared-storage/, reviewed: the text `kvmstrap plan` prints), mode auto decided
// from the host report's storageClients, every inverse present, the rendered pool and secret XML
// held to libvirt's own RelaxNG schemas, and a CHAP password that never reaches the plan.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Answer } from "../../src/answer/schema.js";
import { cluster as clusterSchema } from "../../src/answer/schema-cluster.js";
import type { HostReport } from "../../src/detect/types.js";
import { PLAN_SCHEMA_ID, type Plan } from "../../src/plan/actions.js";
import type { PlanContext } from "../../src/plan/context.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { iscsiMode, nfsMode, planSharedStorage } from "../../src/plan/shared-storage-plan.js";
import { labReport } from "../answer/hosts.js";
import { has, tmp } from "./render/helpers.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});
const dir = tmp(`shared-storage-${process.pid}`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NONE = { iscsiTcp: false, iscsiadm: false, nfsClient: false, mountNfs: false, sources: {} };
const KERNEL = { iscsiTcp: true, iscsiadm: true, nfsClient: true, mountNfs: true, sources: {} };
const PASSWORD = "s3cr3t-chap-pa55";

function plan(storage: unknown[], clients: HostReport["storageClients"]): Plan {
  const cluster = clusterSchema.parse({
    name: "rack1",
    members: [
      { host: "hv1", address: "10.0.0.1" },
      { host: "hv2", address: "10.0.0.2" },
    ],
    networks: { cluster: "10.0.0.0/24" },
    storage,
  });
  const ctx: PlanContext = {
    report: { ...lab, ...(clients ? { storageClients: clients } : {}) },
    answer: { cluster } as unknown as Answer,
    current: new Map(),
    actions: [],
    refusals: [],
    findings: [],
  };
  planSharedStorage(ctx, "hv1");
  return { schema: PLAN_SCHEMA_ID, answerDigest: "", actions: ctx.actions, refusals: [], needsReboot: false };
}

const SAN = { name: "san1", type: "iscsi", portal: "10.0.0.9", target: "iqn.2026-12.org.example:store1" };
const NAS = { name: "nas1", type: "nfs", server: "10.0.0.8", export: "/srv/vms" };

function validate(xml: string, schema: "storagepool" | "secret"): string | null {
  const f = path.join(dir, `x-${Math.random().toString(36).slice(2)}.xml`);
  writeFileSync(f, xml);
  const r = spawnSync("virt-xml-validate", [f, schema], { encoding: "utf8" });
  return r.status === 0 ? null : `${r.stdout}${r.stderr}`;
}

describe("shared storage in the plan", () => {
  it("iSCSI, auto, on a kernel without iscsi_tcp: an iscsi-direct pool with this member's IQN", async () => {
    const p = plan([SAN], NONE);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-shared-storage/iscsi-direct.txt");
    expect(p.actions.map((a) => a.id)).toEqual([
      "cluster.storage.san1.xml",
      "cluster.storage.san1.define",
      "cluster.storage.san1.start",
      "cluster.storage.san1.autostart",
    ]);
  });

  it("iSCSI, auto, where the kernel has it, with CHAP: a kernel pool and a secret set from the file", async () => {
    const passwordFile = path.join(dir, "chap");
    writeFileSync(passwordFile, PASSWORD);
    const p = plan([{ ...SAN, chap: { username: "hv", passwordFile } }], KERNEL);
    const text = renderPlanText(p).replaceAll(passwordFile, "/etc/kvmstrap/secrets/san1-chap");
    await expect(text).toMatchFileSnapshot("./golden-shared-storage/iscsi-kernel-chap.txt");
    expect(JSON.stringify(p)).not.toContain(PASSWORD);
    const set = p.actions.find((a) => a.id === "cluster.storage.san1.secret.value");
    expect(set?.kind === "run-command" && set.argv).toContain(passwordFile);
  });

  it("a forced mode wins over the report", () => {
    expect(
      iscsiMode({ ...SAN, port: 3260, mode: "direct" } as never, { ...lab, storageClients: KERNEL }),
    ).toBe("direct");
    expect(nfsMode({ ...NAS, mode: "kernel" } as never, { ...lab, storageClients: NONE })).toBe("kernel");
    // A report without storageClients (saved before it) takes the user-space path, which needs no module.
    expect(nfsMode({ ...NAS, mode: "auto" } as never, lab)).toBe("libnfs");
  });

  it("NFS where the kernel has a client: a netfs pool mounted at the same path on every member", async () => {
    const p = plan([NAS], KERNEL);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-shared-storage/nfs-netfs.txt");
  });

  it("NFS without a kernel client, and Ceph RBD: nothing on the host (libnfs disks; rbd has its planner)", () => {
    const rbd = { name: "ceph1", type: "rbd", monitors: ["10.0.0.7"], pool: "vms", keyFile: "/etc/k" };
    expect(plan([NAS, rbd], NONE).actions).toEqual([]);
  });

  it("every action that changes libvirt has its inverse (the secret's value goes with its undefine)", () => {
    const p = plan([{ ...SAN, chap: { username: "hv", passwordFile: "/etc/chap" } }, NAS], KERNEL);
    for (const a of p.actions) {
      if (a.kind !== "run-command") continue;
      if (a.id.endsWith(".build") || a.id.endsWith(".secret.value")) expect(a.undo).toBeNull();
      else expect(a.undo, a.id).not.toBeNull();
    }
  });

  it.skipIf(!has("virt-xml-validate"))("pool and secret XML pass libvirt's schemas", () => {
    const p = plan([{ ...SAN, chap: { username: "hv", passwordFile: "/etc/chap" } }, NAS], KERNEL);
    const direct = plan([SAN], NONE);
    for (const a of [...p.actions, ...direct.actions]) {
      if (a.kind !== "write-file") continue;
      expect(validate(a.content, a.path.includes("/secret-") ? "secret" : "storagepool"), a.id).toBeNull();
    }
  });
});
