// The cluster: section against this host and itself: this host is one of the members (the answer goes
// to every member, each finds itself by hostname), members and their addresses are unique, each
// address lies in the network it is used on, HA has a fence device for every member (pacemaker
// never recovers a VM before its host is fenced) and only the answer's own VMs, and corosync's
// two-node quorum matches the member count. Shared storage names are unique, and not a local pool's;
// a VM's store is one of them, an HA VM has one, every other VM names the member that runs it (one
// file for all members: without it each would deploy the VM), and a store forced to the kernel's client is refused
// on a host whose report says that client is missing. (An rbd keyFile is read at apply, not here.)
import { BlockList, isIP } from "node:net";
import type { HostReport } from "../../detect/types.js";
import type { Answer, VmEntry } from "../schema.js";
import type { Cluster } from "../schema-cluster.js";
import { type Rule, rule } from "./types.js";

/** Whether ADDRESS lies in CIDR; null when either is not an address (the schema's regex is loose). */
export function inNetwork(address: string, cidr: string): boolean | null {
  const [net = "", len = ""] = cidr.split("/");
  const family = isIP(net);
  const prefix = Number(len);
  if (!family || isIP(address) !== family || !Number.isInteger(prefix)) return null;
  if (prefix > (family === 4 ? 32 : 128)) return null;
  const type = family === 4 ? "ipv4" : "ipv6";
  const list = new BlockList();
  list.addSubnet(net, prefix, type);
  return list.check(address, type);
}

const shortName = (h: string) => h.split(".")[0] ?? h;

/** The member this host is, by the report's hostname (its first label, as `hostname` says it). */
export function selfMember(cluster: Cluster, report: Pick<HostReport, "hostname">) {
  const name = report.hostname;
  if (!name) return null;
  return (
    cluster.members.find((m) => m.host === name) ??
    cluster.members.find((m) => shortName(m.host) === shortName(name)) ??
    null
  );
}

/**
 * Whether this host deploys the answer's VM: without a cluster every VM is this host's; in a cluster
 * answer (the same file on every member) a VM runs where its `member` says, and an HA VM is every
 * member's to prepare (pacemaker starts it on one). cluster.vm-member makes every VM say which.
 */
export function deploysHere(
  answer: Pick<Answer, "cluster">,
  report: Pick<HostReport, "hostname">,
  vm: VmEntry,
): boolean {
  const c = answer.cluster;
  if (!c) return true;
  if ((c.ha?.vms ?? []).some((v) => v.vm === vm.name)) return true;
  const self = selfMember(c, report);
  if (!self || vm.member === undefined) return false;
  return vm.member === self.host || shortName(vm.member) === shortName(self.host);
}

/** Whether the kernel's iSCSI initiator and NFS client are usable here, by the report (null: it
 *  cannot tell). One source for the rules and the shared-storage planner's `mode: auto`. */
export function kernelClients(report: Pick<HostReport, "storageClients">) {
  const c = report.storageClients;
  const both = (a: boolean | null | undefined, b: boolean | null | undefined) =>
    a === false || b === false ? false : a === true && b === true ? true : null;
  return { iscsi: both(c?.iscsiTcp, c?.iscsiadm), nfs: both(c?.nfsClient, c?.mountNfs) };
}

/** Every member's migration address: its own, else its cluster address. */
export const migrationAddressOf = (m: Cluster["members"][number]) => m.migrationAddress ?? m.address;

export const clusterRules: Rule[] = [
  rule(
    "cluster.self",
    "this host is one of the cluster's members (by its hostname): the same answer goes to every member",
    ({ answer, report }, emit) => {
      const c = answer.cluster;
      if (!c) return;
      const names = c.members.map((m) => m.host).join(", ");
      if (!report.hostname)
        emit.warning(
          "cluster.members",
          `the host report has no hostname: cannot tell which of ${names} this host is`,
        );
      else if (!selfMember(c, report))
        emit.error(
          "cluster.members",
          `this host (${report.hostname}) is not a member (members: ${names})`,
          `add { host: ${report.hostname}, address: ... } to cluster.members, or apply this answer on a member`,
        );
    },
  ),
  rule(
    "cluster.unique",
    "each member is listed once, and no two members share an address",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c) return;
      const hosts = new Map<string, number>();
      const addresses = new Map<string, string>();
      c.members.forEach((m, i) => {
        const first = hosts.get(shortName(m.host));
        if (first !== undefined)
          emit.error(`cluster.members[${i}].host`, `${m.host} is also cluster.members[${first}]`);
        else hosts.set(shortName(m.host), i);
        const own = new Set([m.address, m.migrationAddress].filter((a): a is string => a !== undefined));
        for (const [key, a] of [
          ["address", m.address],
          ["migrationAddress", m.migrationAddress],
        ] as const) {
          if (a === undefined) continue;
          const holder = addresses.get(a.toLowerCase());
          if (holder !== undefined)
            emit.error(`cluster.members[${i}].${key}`, `${a} is already the address of ${holder}`);
        }
        for (const a of own) addresses.set(a.toLowerCase(), `cluster.members[${i}] (${m.host})`);
      });
    },
  ),
  rule(
    "cluster.networks",
    "members' addresses lie in the cluster network, their migration addresses in the migration network",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c) return;
      const nets = [
        ["cluster", c.networks.cluster],
        ["migration", c.networks.migration],
      ] as const;
      for (const [key, cidr] of nets) {
        if (cidr === undefined) continue;
        if (inNetwork(cidr.split("/")[0] ?? "", cidr) === null)
          emit.error(`cluster.networks.${key}`, `${cidr} is not an IPv4 or IPv6 network with its prefix`);
      }
      const ok = (a: string, cidr: string) => inNetwork(a, cidr) !== false;
      c.members.forEach((m, i) => {
        const at = `cluster.members[${i}]`;
        if (isIP(m.address) === 0) emit.error(`${at}.address`, `${m.address} is not an IP address`);
        else if (!ok(m.address, c.networks.cluster))
          emit.error(`${at}.address`, `${m.address} is outside networks.cluster (${c.networks.cluster})`);
        if (m.migrationAddress !== undefined && isIP(m.migrationAddress) === 0)
          emit.error(`${at}.migrationAddress`, `${m.migrationAddress} is not an IP address`);
        const migration = c.networks.migration;
        if (migration === undefined) {
          if (m.migrationAddress !== undefined && !ok(m.migrationAddress, c.networks.cluster))
            emit.error(
              `${at}.migrationAddress`,
              `${m.migrationAddress} is outside networks.cluster (${c.networks.cluster}), and no networks.migration is given`,
              "add networks.migration, or leave migrationAddress out",
            );
        } else if (m.migrationAddress === undefined) {
          if (!ok(m.address, migration))
            emit.error(
              `${at}.migrationAddress`,
              `missing: the migration address defaults to ${m.address}, which is outside networks.migration (${migration})`,
              `give ${m.host} its address on ${migration}`,
            );
        } else if (!ok(m.migrationAddress, migration))
          emit.error(
            `${at}.migrationAddress`,
            `${m.migrationAddress} is outside networks.migration (${migration})`,
          );
      });
    },
  ),
  rule(
    "cluster.fencing",
    "with HA, every member has a fence device: a VM is recovered elsewhere only after its host is off",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c?.ha) return;
      c.members.forEach((m, i) => {
        if (!m.fence)
          emit.error(
            `cluster.members[${i}].fence`,
            `${m.host} has no fence device: with cluster.ha set, pacemaker cannot recover its VMs safely`,
            "give it an ipmilan or redfish fence device (its BMC), or another fence agent",
          );
      });
    },
  ),
  rule(
    "cluster.ha-vms",
    "each HA VM is one of the answer's vms, listed once, preferring a member",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c?.ha) return;
      // One answer file describes the cluster: an HA VM is deployed from it (vms:), so its
      // definition, disks and template are known and checked by the same rule set.
      const vms = new Set(answer.vms.map((v) => v.name));
      const seen = new Map<string, number>();
      c.ha.vms.forEach((v, i) => {
        const at = `cluster.ha.vms[${i}]`;
        if (!vms.has(v.vm))
          emit.error(
            `${at}.vm`,
            `${v.vm} is not one of the answer's vms`,
            "add it to vms: (HA VMs are deployed from the same answer file, on shared storage)",
          );
        const first = seen.get(v.vm);
        if (first !== undefined) emit.error(`${at}.vm`, `${v.vm} is also cluster.ha.vms[${first}]`);
        else seen.set(v.vm, i);
        if (v.prefer !== undefined && !c.members.some((m) => shortName(m.host) === shortName(v.prefer ?? "")))
          emit.error(`${at}.prefer`, `${v.prefer} is not a member`);
      });
    },
  ),
  rule(
    "cluster.two-node",
    "corosync's two-node quorum exactly when the cluster has two members",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c?.ha || c.ha.twoNode === undefined) return;
      const n = c.members.length;
      if (n === 2 && !c.ha.twoNode)
        emit.error(
          "cluster.ha.twoNode",
          "false with two members: losing either one loses quorum, and the survivor stops every HA VM",
          "leave twoNode out (on with two members) or set it to true",
        );
      if (n > 2 && c.ha.twoNode)
        emit.error(
          "cluster.ha.twoNode",
          `true with ${n} members: two_node is for two-member clusters only (corosync refuses it otherwise)`,
          "leave twoNode out",
        );
    },
  ),
  rule(
    "cluster.storage-names",
    "each shared store's name is unique, and not the name of a local storage pool",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c) return;
      const local = new Set((answer.storage?.pools ?? []).map((p) => p.name));
      const seen = new Map<string, number>();
      c.storage.forEach((s, i) => {
        const at = `cluster.storage[${i}].name`;
        const first = seen.get(s.name);
        if (first !== undefined) emit.error(at, `${s.name} is also cluster.storage[${first}]`);
        else seen.set(s.name, i);
        if (local.has(s.name)) emit.error(at, `${s.name} is also a local pool in storage.pools`);
      });
    },
  ),
  rule("cluster.vm-store", "a VM's store is one of cluster.storage", ({ answer }, emit) => {
    const names = (answer.cluster?.storage ?? []).map((s) => s.name);
    answer.vms.forEach((vm, i) => {
      if (vm.store && !names.includes(vm.store.name))
        emit.error(
          `vms[${i}].store.name`,
          `no store "${vm.store.name}" in cluster.storage${names.length ? ` (it has ${names.join(", ")})` : ""}`,
        );
    });
  }),
  rule(
    "cluster.ha-store",
    "an HA VM's disk is on a cluster store: pacemaker restarts it on another member, which must see it",
    ({ answer }, emit) => {
      const c = answer.cluster;
      if (!c?.ha) return;
      const said = new Set<string>();
      c.ha.vms.forEach((v, k) => {
        const i = answer.vms.findIndex((vm) => vm.name === v.vm);
        const vm = answer.vms[i];
        // An HA VM missing from vms:, or listed twice, is cluster.ha-vms' finding.
        if (said.has(v.vm)) return;
        said.add(v.vm);
        if (vm && !vm.store)
          emit.error(
            `vms[${i}].store`,
            `${v.vm} is an HA VM (cluster.ha.vms[${k}]) with a local disk: no other member could restart it`,
            "give it store: { name: <a cluster.storage name>, volume: ... }",
          );
      });
    },
  ),
  rule(
    "cluster.vm-member",
    "in a cluster answer each VM names the member that runs it, or is an HA VM that pacemaker places",
    ({ answer }, emit) => {
      const c = answer.cluster;
      const ha = new Set((c?.ha?.vms ?? []).map((v) => v.vm));
      const members = (c?.members ?? []).map((m) => m.host);
      answer.vms.forEach((vm, i) => {
        if (!c) {
          if (vm.member !== undefined)
            emit.error(
              `vms[${i}].member`,
              "member: names a cluster member, and this answer has no cluster: section",
            );
          return;
        }
        if (ha.has(vm.name)) {
          if (vm.member !== undefined)
            emit.error(
              `vms[${i}].member`,
              `${vm.name} is an HA VM: pacemaker decides where it runs`,
              "drop member: and set cluster.ha.vms[].prefer instead",
            );
          return;
        }
        if (vm.member === undefined)
          emit.error(
            `vms[${i}]`,
            `${vm.name} names no member: every member given this answer would deploy and start it (on a shared disk, twice)`,
            `add member: <one of ${members.join(", ")}>, or list it in cluster.ha.vms`,
          );
        else if (!members.some((m) => m === vm.member || shortName(m) === shortName(vm.member as string)))
          emit.error(`vms[${i}].member`, `${vm.member} is not a member (members: ${members.join(", ")})`);
      });
    },
  ),
  rule(
    "cluster.store-mode",
    "a store forced to the kernel's client (mode: kernel) is on a host whose report has that client",
    ({ answer, report }, emit) => {
      const c = answer.cluster;
      if (!c) return;
      const k = kernelClients(report);
      c.storage.forEach((s, i) => {
        if (s.type === "rbd" || s.mode !== "kernel") return;
        const has = s.type === "iscsi" ? k.iscsi : k.nfs;
        const what =
          s.type === "iscsi"
            ? "the iSCSI initiator (iscsi_tcp and iscsiadm)"
            : "the NFS client (nfs and mount.nfs)";
        const other = s.type === "iscsi" ? "direct" : "libnfs";
        if (has === false)
          emit.error(
            `cluster.storage[${i}].mode`,
            `kernel: this host's report says ${what} is missing`,
            `install it (${s.type === "iscsi" ? "open-iscsi" : "nfs-common"}), or set mode: auto or ${other}`,
          );
      });
    },
  ),
];
