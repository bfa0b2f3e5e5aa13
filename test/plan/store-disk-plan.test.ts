// The fill of a VM's store volume in the plan (src/plan/store-disk-plan.ts): where qemu finds the
// volume for each store and mode (the same names the pools and disks use), and which member writes it:
// a non-HA VM's own member, an HA VM's first cluster member only; on RBD a clone of the image in Ceph.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { SharedStore } from "../../src/answer/schema-cluster.js";
import type { HostReport } from "../../src/detect/types.js";
import { buildPlan } from "../../src/plan/index.js";
import { rbdBaseName } from "../../src/plan/rbd-plan.js";
import { initiatorIqn } from "../../src/plan/shared-storage-plan.js";
import { fillTargetFor } from "../../src/plan/store-disk-plan.js";
import { fillTargetSchema } from "../../src/vm/fill-disk.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

const withClients = (r: HostReport, on: boolean): HostReport => ({
  ...r,
  storageClients: { iscsiTcp: on, iscsiadm: on, nfsClient: on, mountNfs: on, sources: {} },
});

const iscsi = (over: Partial<Extract<SharedStore, { type: "iscsi" }>> = {}) =>
  ({
    name: "san1",
    type: "iscsi",
    portal: "10.30.0.5",
    port: 3260,
    target: "iqn.2026-12.net.example:san1",
    mode: "auto",
    chap: { username: "kvm", passwordFile: "/etc/kvmstrap/secrets/chap-san1" },
    ...over,
  }) as Extract<SharedStore, { type: "iscsi" }>;
const nfs = { name: "nas1", type: "nfs", server: "10.30.0.6", export: "/srv/vms/", mode: "auto" } as const;

describe("where qemu finds a store volume", () => {
  it("iSCSI without the kernel initiator: libiscsi with the pool's portal, target, LUN, CHAP user and this member's IQN", () => {
    const t = fillTargetFor(iscsi(), "unit:0:0:3", "rack1", "kvm-a", withClients(lab, false));
    expect(t).toEqual({
      driver: "iscsi",
      portal: "10.30.0.5:3260",
      target: "iqn.2026-12.net.example:san1",
      lun: 3,
      user: "kvm",
      initiatorName: initiatorIqn(iscsi(), "rack1", "kvm-a"),
    });
    expect(fillTargetSchema.safeParse(t).success).toBe(true);
  });

  it("iSCSI through the kernel: the LUN's by-path device the kernel pool logs in", () => {
    expect(fillTargetFor(iscsi(), "unit:0:0:1", "rack1", "kvm-a", withClients(lab, true))).toEqual({
      driver: "host_device",
      filename: "/dev/disk/by-path/ip-10.30.0.5:3260-iscsi-iqn.2026-12.net.example:san1-lun-1",
    });
  });

  it("an iSCSI volume that is not a LUN name has no fill", () => {
    expect(fillTargetFor(iscsi({ mode: "direct" }), "db1.raw", "rack1", "kvm-a", lab)).toBeNull();
  });

  it("NFS: libnfs on the export's file, or the file under the kernel pool's mount point", () => {
    expect(fillTargetFor(nfs, "db1.raw", "rack1", "kvm-a", withClients(lab, false))).toEqual({
      driver: "nfs",
      server: "10.30.0.6",
      path: "/srv/vms/db1.raw",
    });
    expect(fillTargetFor(nfs, "db1.raw", "rack1", "kvm-a", withClients(lab, true))).toEqual({
      driver: "file",
      filename: "/var/lib/kvmstrap/shared/nas1/db1.raw",
    });
  });
});

const IMAGE = "/var/lib/kvmstrap/images/debian-12.qcow2";
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
const answer = (ha: boolean, store = "san1", volume = "unit:0:0:1") =>
  parseAnswerText(
    `version: 1
cluster:
  name: rack1
  networks: { cluster: 192.0.2.0/24 }
  members:
    - { host: kvm-a, address: 192.0.2.11 }
    - { host: kvm-b, address: 192.0.2.12 }
  storage:
    - { name: san1, type: iscsi, portal: 192.0.2.50, target: "iqn.2026-12.net.example:san1", mode: direct, chap: { username: kvm, passwordFile: /etc/kvmstrap/secrets/chap } }
    - { name: ceph1, type: rbd, monitors: [192.0.2.60], pool: vms, keyFile: /etc/kvmstrap/secrets/ceph }
${ha ? "  ha: { vms: [{ vm: db1 }] }" : ""}
vms:
  - name: db1
    image: /var/lib/kvmstrap/images/debian-12.qcow2
    vcpus: 1
    memoryMiB: 512
    diskGiB: 4
    user: { name: debian, sshKeys: ['${KEY}'] }
    store: { name: ${store}, volume: "${volume}" }
${ha ? "" : "    member: kvm-b"}
`,
    "answer.yaml",
  );
const fillOf = (r: HostReport, a: ReturnType<typeof answer>) =>
  buildPlan(r, a).actions.filter((x) => x.id === "vm.db1.disk-fill");

describe("which member writes the volume", () => {
  it("a VM that is not HA: its member, with the CHAP password given as a file, before the domain", () => {
    expect(fillOf({ ...lab, hostname: "kvm-a" }, answer(false))).toEqual([]);
    const plan = buildPlan({ ...lab, hostname: "kvm-b" }, answer(false));
    const ids = plan.actions.filter((a) => a.id.startsWith("vm.db1.")).map((a) => a.id);
    expect(ids[0]).toBe("vm.db1.disk-fill");
    const fill = plan.actions[plan.actions.findIndex((a) => a.id === "vm.db1.disk-fill")];
    expect(fill).toMatchObject({ kind: "run-command", undo: null });
    const argv = fill?.kind === "run-command" ? fill.argv : [];
    expect(argv.slice(0, 5)).toEqual([
      "kvmstrap",
      "vm",
      "fill-disk",
      "--image",
      "/var/lib/kvmstrap/images/debian-12.qcow2",
    ]);
    expect(argv[argv.indexOf("--secret-file") + 1]).toBe("/etc/kvmstrap/secrets/chap");
    expect(JSON.parse(argv[argv.indexOf("--disk") + 1] ?? "")).toMatchObject({
      driver: "iscsi",
      lun: 1,
      user: "kvm",
    });
    expect(argv).not.toContain("--size"); // a LUN has its own size
  });

  it("an HA VM: the cluster's first member only", () => {
    expect(fillOf({ ...lab, hostname: "kvm-a" }, answer(true))).toHaveLength(1);
    expect(fillOf({ ...lab, hostname: "kvm-b" }, answer(true))).toEqual([]);
  });

  it("an RBD store: no fill; the volume is a clone of the image converted into Ceph once, grown to diskGiB", () => {
    const on = (host: string) =>
      buildPlan({ ...lab, hostname: host }, answer(false, "ceph1", "db1-root")).actions;
    const steps = on("kvm-b");
    expect(steps.filter((x) => x.id === "vm.db1.disk-fill")).toEqual([]);
    const argvOf = (suffix: string) => {
      const a = steps.find((x) => x.id.endsWith(suffix));
      return a?.kind === "run-command" ? a.argv.join(" ") : "";
    };
    const base = rbdBaseName(IMAGE);
    expect(argvOf(`.base.${base}`)).toMatch(new RegExp(`^qemu-img convert -O raw ${IMAGE} rbd:vms/${base}:`));
    expect(argvOf("disk-clone")).toBe(`virsh vol-clone --pool ceph1 ${base} db1-root`);
    expect(argvOf("disk-size")).toBe(`virsh vol-resize --pool ceph1 db1-root ${4 * 2 ** 30}`);
    const at = (id: string) => steps.findIndex((a) => a.id === id);
    expect(at("vm.db1.disk-clone")).toBeLessThan(at("vm.db1.define"));
    expect(on("kvm-a").filter((a) => a.id === "vm.db1.disk-clone")).toEqual([]);
  });
});
