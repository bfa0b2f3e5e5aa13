// A vms: entry whose disk is on a cluster store (vms[].store): the plan makes no overlay, and the
// domain's disk is the store's: a pool volume (iSCSI, NFS mounted by the kernel) or a network disk
// (NFS through libnfs where the report has no kernel client; RBD with its secret by uuid). A store
// that cluster.storage lacks is an error at its key; a VM without a store deploys as before.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { buildPlan } from "../../src/plan/index.js";
import { vmSpecsFromAnswer } from "../../src/vm/from-answer.js";
import { secretUuidFor } from "../../src/vm/network-disk.js";
import { labReport } from "../answer/hosts.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
const NONE = { iscsiTcp: false, iscsiadm: false, nfsClient: false, mountNfs: false, sources: {} };
const KERNEL = { iscsiTcp: true, iscsiadm: true, nfsClient: true, mountNfs: true, sources: {} };

let lab: HostReport;
beforeAll(async () => {
  lab = { ...(await labReport()), hostname: "hv1" }; // the member whose VMs these are
});

const vm = (name: string, store?: string) =>
  [
    `  - name: ${name}`,
    "    image: /var/lib/kvmstrap/images/debian-12.qcow2",
    "    vcpus: 1",
    "    memoryMiB: 512",
    "    diskGiB: 4",
    `    user: { name: debian, sshKeys: ['${KEY}'], sudo: true }`,
    ...(store ? [`    store: ${store}`] : []),
    "    member: hv1",
  ].join("\n");

const answer = (vms: string[]) =>
  parseAnswerText(
    `version: 1
cluster:
  name: rack1
  members:
    - { host: hv1, address: 10.0.0.1 }
    - { host: hv2, address: 10.0.0.2 }
  networks: { cluster: 10.0.0.0/24 }
  storage:
    - { name: san1, type: iscsi, portal: 10.0.0.9, target: "iqn.2026-12.org.example:store1" }
    - { name: nas1, type: nfs, server: 10.0.0.8, export: /srv/vms/ }
    - { name: ceph1, type: rbd, monitors: [10.0.0.7], pool: vms, keyFile: /etc/kvmstrap/ceph.key }
vms:
${vms.join("\n")}
`,
    "answer.yaml",
  );

const domainOf = (report: HostReport, vms: string[], name: string) => {
  const p = buildPlan(report, answer(vms));
  const mine = p.actions.filter((a) => a.id.startsWith(`vm.${name}.`));
  const define = mine.find((a) => a.kind === "libvirt" && a.op === "define-domain");
  return { ids: mine.map((a) => a.id), xml: define?.kind === "libvirt" && "xml" in define ? define.xml : "" };
};

describe("VMs on shared storage", () => {
  it("an iSCSI volume: the pool's volume as the disk, no overlay; the image goes onto it first (once, while blank)", () => {
    const d = domainOf(
      { ...lab, storageClients: NONE },
      [vm("web", "{ name: san1, volume: 'unit:0:0:1' }")],
      "web",
    );
    expect(d.ids).toEqual([
      "vm.web.disk-fill",
      "vm.web.define",
      "vm.web.seed",
      "vm.web.record",
      "vm.web.start",
    ]);
    expect(d.xml).toContain('<disk type="volume" device="disk">');
    expect(d.xml).toContain('<source pool="san1" volume="unit:0:0:1"/>');
    expect(d.xml).not.toContain(".qcow2");
  });

  it("NFS: a libnfs network disk without a kernel client, the netfs pool's volume with one", () => {
    const entry = [vm("db", "{ name: nas1, volume: db.raw }")];
    const user = domainOf({ ...lab, storageClients: NONE }, entry, "db").xml;
    expect(user).toContain('<source protocol="nfs" name="/srv/vms/db.raw">');
    expect(user).toContain('<host name="10.0.0.8"/>');
    const kernel = domainOf({ ...lab, storageClients: KERNEL }, entry, "db").xml;
    expect(kernel).toContain('<source pool="nas1" volume="db.raw"/>');
  });

  it("RBD: H4's rbdDisk, a network disk on every monitor with the cephx secret by uuid", () => {
    const xml = domainOf(lab, [vm("app", "{ name: ceph1, volume: app-disk }")], "app").xml;
    expect(xml).toContain('<source protocol="rbd" name="vms/app-disk">');
    expect(xml).toContain(`<secret type="ceph" uuid="${secretUuidFor("rack1", "ceph1")}"/>`);
  });

  it("a store cluster.storage lacks is an error at vms[i].store.name; a VM without one keeps its overlay", () => {
    const a = answer([vm("plain"), vm("lost", "{ name: nowhere, volume: x.raw }")]);
    const r = vmSpecsFromAnswer(a, lab);
    expect(r.errors).toEqual([
      {
        path: "vms[1].store.name",
        message: 'no store "nowhere" in cluster.storage (it has san1, nas1, ceph1)',
      },
    ]);
    expect(r.specs.map((s) => s.name)).toEqual(["plain"]);
    expect(domainOf(lab, [vm("plain")], "plain").ids).toContain("vm.plain.overlay");
  });

  it("a bad volume name is refused by the schema at its key", () => {
    expect(() => answer([vm("bad", "{ name: san1, volume: '../etc/passwd' }")])).toThrow(
      /store\.volume|volume/,
    );
  });
});
