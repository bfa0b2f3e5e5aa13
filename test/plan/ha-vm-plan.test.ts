// The VM plan and HA: a VM in cluster.ha.vms is pacemaker's to start (VirtualDomain, one member at a
// time), so the answer's plan neither defines nor starts it, and nothing turns libvirt autostart on
// for it; the domain XML it would have defined goes to the file the CIB's VirtualDomain names, beside
// its seed and record. A VM outside cluster.ha in the same answer is deployed and started as before.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import type { Action } from "../../src/plan/actions.js";
import { buildPlan } from "../../src/plan/index.js";
import { haDomainPath } from "../../src/plan/render/cib.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = { ...(await labReport()), hostname: "kvm-a" };
});

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
const vm = (name: string, store?: string, member?: string) =>
  [
    `  - name: ${name}`,
    "    image: /var/lib/kvmstrap/images/debian-12.qcow2",
    "    vcpus: 1",
    "    memoryMiB: 512",
    "    diskGiB: 4",
    `    user: { name: debian, sshKeys: ['${KEY}'] }`,
    ...(store ? [`    store: ${store}`] : []),
    ...(member ? [`    member: ${member}`] : []),
  ].join("\n");

const answer = (ha: string[]) =>
  parseAnswerText(
    `version: 1
cluster:
  name: rack1
  networks: { cluster: 192.0.2.0/24 }
  members:
    - host: kvm-a
      address: 192.0.2.11
      fence: { agent: ipmilan, address: 10.0.0.11, username: admin, passwordFile: /etc/kvmstrap/secrets/bmc-a }
    - host: kvm-b
      address: 192.0.2.12
      fence: { agent: ipmilan, address: 10.0.0.12, username: admin, passwordFile: /etc/kvmstrap/secrets/bmc-b }
  storage:
    - { name: nas1, type: nfs, server: 192.0.2.50, export: /srv/vms, mode: libnfs }
  ha:
    vms: [${ha.map((v) => `{ vm: ${v} }`).join(", ")}]
vms:
${vm("web1", undefined, ha.includes("web1") ? undefined : "kvm-a")}
${vm("db1", "{ name: nas1, volume: db1.raw }", ha.includes("db1") ? undefined : "kvm-a")}
`,
    "answer.yaml",
  );

const ofVm = (actions: Action[], name: string) => actions.filter((a) => a.id.startsWith(`vm.${name}.`));
const argvs = (actions: Action[]) =>
  actions.flatMap((a) => ("argv" in a && Array.isArray(a.argv) ? [a.argv.join(" ")] : []));

describe("the VM plan leaves HA VMs to pacemaker", () => {
  it("an HA VM: its XML in pacemaker's file, no define, no start, no autostart; the other VM as before", () => {
    const plan = buildPlan(lab, answer(["db1"]));
    expect(plan.refusals).toEqual([]);
    const db = ofVm(plan.actions, "db1");
    // kvm-a is the cluster's first member: it writes the image onto the HA VM's blank volume.
    expect(db.map((a) => a.id)).toEqual([
      "vm.db1.disk-fill",
      "vm.db1.ha-domain",
      "vm.db1.seed",
      "vm.db1.record",
    ]);
    expect(db.some((a) => a.kind === "libvirt")).toBe(false);
    const file = db.find((a) => a.id === "vm.db1.ha-domain");
    expect(file).toMatchObject({ kind: "write-file", path: haDomainPath("db1") });
    const xml = file?.kind === "write-file" ? file.content : "";
    expect(xml).toContain("<name>db1</name>");
    expect(xml).toContain('<source protocol="nfs" name="/srv/vms/db1.raw">');
    // Nothing anywhere in the plan starts or autostarts it; the HA plan turns autostart off.
    const all = argvs(plan.actions);
    expect(all.filter((c) => /\bvirsh (start|create)\b.*\bdb1\b/.test(c))).toEqual([]);
    expect(all.filter((c) => /\bautostart\b.*\bdb1\b/.test(c))).toEqual(["virsh autostart --disable db1"]);
    expect(
      plan.actions.filter((a) => a.kind === "libvirt" && a.op === "start-domain").map((a) => a.id),
    ).toEqual(["vm.web1.start"]);
    expect(ofVm(plan.actions, "web1").map((a) => a.id)).toEqual([
      "vm.web1.define",
      "vm.web1.overlay",
      "vm.web1.seed",
      "vm.web1.record",
      "vm.web1.start",
    ]);
  });

  it("the same VM outside cluster.ha is defined and started by the VM plan", () => {
    const plan = buildPlan(lab, answer([]));
    expect(ofVm(plan.actions, "db1").map((a) => a.id)).toEqual([
      "vm.db1.disk-fill",
      "vm.db1.define",
      "vm.db1.seed",
      "vm.db1.record",
      "vm.db1.start",
    ]);
  });
});
