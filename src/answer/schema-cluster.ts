// The answer's `cluster:` section: the hosts that form one cluster, its networks, its shared storage,
// the fence device of each member and the HA policy of each VM. Kept apart from schema.ts, which places
// it under `cluster:`. The same section goes to every member (one answer file for the cluster); each
// host finds itself in `members` by hostname. Secrets (fence and CHAP passwords, cephx keys) are never
// written here: the answer names a file holding each one, read when the plan is applied and stored as
// a libvirt secret or in pacemaker's local secret store, so a secret never reaches the plan, the
// journal, the CIB or an event.
import { z } from "zod";
import { type Grammar, HOSTNAME, OBJECT_NAME, VM_NAME } from "../core/grammar.js";

const grammar = (g: Grammar) =>
  z.string().regex(g.pattern, { message: g.describe, abort: true }).refine(g.test, { message: g.describe });

const ip = z.string().regex(/^[0-9a-fA-F:.]+$/, "an IP address");
const cidr = z
  .string()
  .regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, "a network with prefix length such as 192.0.2.0/24");
const hostOrIp = z
  .string()
  .regex(/^[A-Za-z0-9.:-]{1,253}$/, "a host name or an IP address")
  .describe("a host name or an IP address");
const secretFile = z
  .string()
  .regex(/^\/[^\s\n\\%]*$/, "an absolute path without spaces, '%' or '\\'")
  .refine((p) => !p.split("/").includes(".."), "no '..' in the path")
  .describe(
    "an absolute path to a root-only file holding the secret (read at apply, never copied into plans)",
  );
const iqn = z
  .string()
  .regex(
    /^(iqn\.\d{4}-\d{2}\.[a-z0-9.-]+(:[^\s]+)?|eui\.[0-9A-Fa-f]{16})$/,
    "an iSCSI name such as iqn.2026-12.org.example:store1",
  );

// ---- fencing: one device per member, the way pacemaker's stonith resources name them ----
const fenceIpmi = z
  .strictObject({
    agent: z.literal("ipmilan"),
    address: hostOrIp.describe("the BMC's address"),
    username: z.string().min(1).max(64),
    passwordFile: secretFile,
    lanplus: z.boolean().default(true).describe("IPMI v2.0 (lanplus), as every current BMC speaks"),
  })
  .describe("fence_ipmilan: power the member off through its BMC over IPMI");
const fenceRedfish = z
  .strictObject({
    agent: z.literal("redfish"),
    address: hostOrIp.describe("the BMC's address"),
    username: z.string().min(1).max(64),
    passwordFile: secretFile,
    systemId: z.string().max(200).optional().describe("the Redfish system path when the BMC has several"),
  })
  .describe("fence_redfish: power the member off through its BMC over Redfish");
const fenceOther = z
  .strictObject({
    agent: z.literal("other"),
    name: z
      .string()
      .regex(/^fence_[a-z0-9_]{1,40}$/, "an installed fence agent's name such as fence_apc")
      .describe("any installed fence agent (fence-agents ships dozens)"),
    options: z
      .record(z.string().regex(/^[a-z_][a-z0-9_-]{0,40}$/, "a fence agent option name"), z.string().max(400))
      .default({})
      .describe("the agent's options (its metadata lists them); no passwords here: use passwordFile"),
    passwordFile: secretFile.optional(),
  })
  .describe("another fence agent, by name");
export const fenceDevice = z
  .discriminatedUnion("agent", [fenceIpmi, fenceRedfish, fenceOther])
  .describe("how the other members power this one off before they take its VMs");

export const clusterMember = z
  .strictObject({
    host: grammar(HOSTNAME).describe("the member's hostname, as its report and `hostname` say"),
    address: ip.describe("its address on the cluster network (corosync's ring and libvirt's TLS)"),
    migrationAddress: ip.optional().describe("its address on the migration network; default: address"),
    fence: fenceDevice.optional().describe("required for every member when ha: is set"),
  })
  .describe("one host of the cluster");

// ---- shared storage: a libvirt pool (or network disks) every member defines the same way ----
const iscsiStore = z
  .strictObject({
    name: grammar(OBJECT_NAME).describe("the pool name on every member"),
    type: z.literal("iscsi"),
    portal: hostOrIp.describe("the target portal's address"),
    port: z.number().int().min(1).max(65535).default(3260),
    target: iqn.describe("the target's IQN"),
    initiator: iqn
      .optional()
      .describe("this cluster's initiator IQN; default: one derived from the cluster name"),
    mode: z
      .enum(["auto", "kernel", "direct"])
      .default("auto")
      .describe(
        "kernel: libvirt's iscsi pool (open-iscsi); direct: iscsi-direct (libiscsi in qemu); auto: kernel where the host has iscsi_tcp",
      ),
    chap: z.strictObject({ username: z.string().min(1).max(64), passwordFile: secretFile }).optional(),
  })
  .describe("an iSCSI target's LUNs as volumes");
const rbdStore = z
  .strictObject({
    name: grammar(OBJECT_NAME),
    type: z.literal("rbd"),
    monitors: z.array(hostOrIp).min(1).describe("the Ceph monitors' addresses"),
    pool: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, "a Ceph pool name"),
    user: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "a cephx user without the client. prefix")
      .default("libvirt"),
    keyFile: secretFile.describe("the cephx key of client.USER, stored as a libvirt secret"),
  })
  .describe("a Ceph RBD pool; VM disks are network disks (protocol rbd) with the cephx secret");
const nfsStore = z
  .strictObject({
    name: grammar(OBJECT_NAME),
    type: z.literal("nfs"),
    server: hostOrIp,
    export: z.string().regex(/^\/[^\s\n\\%]*$/, "the export's absolute path"),
    mode: z
      .enum(["auto", "kernel", "libnfs"])
      .default("auto")
      .describe(
        "kernel: libvirt's netfs pool (mounted); libnfs: qemu's nfs network disks; auto: kernel where the host has the NFS client",
      ),
  })
  .describe("an NFS export");
export const sharedStore = z.discriminatedUnion("type", [iscsiStore, rbdStore, nfsStore]);

// ---- HA: which VMs pacemaker keeps running, and how ----
export const haVm = z
  .strictObject({
    vm: grammar(VM_NAME).describe("a VM whose disks are on shared storage"),
    policy: z
      .enum(["restart", "migrate"])
      .default("migrate")
      .describe(
        "migrate: live-migrate on planned moves (VirtualDomain allow-migrate); restart: stop and start",
      ),
    prefer: grammar(HOSTNAME).optional().describe("the member it runs on when that member is up"),
  })
  .describe("a VM kept running by pacemaker");
export const haPolicy = z
  .strictObject({
    vms: z.array(haVm).default([]),
    twoNode: z
      .boolean()
      .optional()
      .describe("corosync's two_node quorum (wait_for_all); default: on when the cluster has two members"),
  })
  .describe("high availability on corosync and pacemaker, fencing before recovery");

export const cluster = z
  .strictObject({
    name: grammar(OBJECT_NAME).describe("the cluster's name (corosync's cluster_name)"),
    members: z.array(clusterMember).min(2).max(32),
    networks: z
      .strictObject({
        cluster: cidr.describe("corosync and libvirt TLS"),
        migration: cidr.optional().describe("migration streams; default: the cluster network"),
      })
      .describe("the networks the members share"),
    storage: z.array(sharedStore).default([]),
    ha: haPolicy.optional(),
  })
  .describe("hosts that form one cluster: trust, shared storage, live migration and HA");

export type Cluster = z.infer<typeof cluster>;
export type ClusterMember = z.infer<typeof clusterMember>;
export type FenceDevice = z.infer<typeof fenceDevice>;
export type SharedStore = z.infer<typeof sharedStore>;
export type HaPolicy = z.infer<typeof haPolicy>;
