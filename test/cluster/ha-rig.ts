// The HA scenario shared by test/cluster/ha.cluster.test.ts and bench/ha-failover.mjs: two test hosts
// running libvirtd, corosync and pacemaker (ha-hosts.ts) configured from planHa's actions for one
// answer (each member fenced by fence_kvmstrap_test through the power controller), a counter guest
// whose disk both hosts see, preferring A; then A killed and the recovery on B timed.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { execa } from "execa";
import { type Cluster as ClusterAnswer, cluster as clusterSchema } from "../../src/answer/schema-cluster.js";
import type { CrmStatus } from "../../src/host/crm-mon.js";
import type { Action } from "../../src/plan/actions.js";
import type { PlanContext } from "../../src/plan/context.js";
import { HA_CIB_FILE, planHa } from "../../src/plan/ha-plan.js";
import { vmResourceId } from "../../src/plan/render/cib.js";
import { COROSYNC_AUTHKEY, COROSYNC_CONF } from "../../src/plan/render/corosync-conf.js";
import { counterDisk, counterDomain, counters } from "./counter-guest.js";
import {
  FENCE_AGENT,
  type HaNode,
  type PowerController,
  startHaNode,
  startPowerController,
} from "./ha-hosts.js";
import { type Cluster, type ClusterHost, startCluster } from "./hosts.js";

const GUEST_BRIDGE = "kvhabr0";

export type HaRig = {
  cluster: Cluster;
  power: PowerController;
  a: HaNode;
  b: HaNode;
  vm: string;
  answer: ClusterAnswer;
  actions: Action[];
  serial(h: ClusterHost): Promise<string>;
  stop(): Promise<void>;
};

export async function until<T>(what: string, probe: () => Promise<T | undefined>, ms: number, node?: HaNode) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${ms} ms\n${node ? await node.logs() : ""}`);
    await sleep(250);
  }
}

/** The nodes a resource is started on (not starting, stopping or failed). */
export const runsOn = (s: CrmStatus, rsc: string) =>
  s.resources.find((r) => r.id === rsc && r.role === "Started")?.nodes ?? [];

/** When the qemu process running VM started (wall clock, 10 ms ticks), from /proc: whichever host runs it. */
export async function qemuStartedAt(vm: string): Promise<{ at: number; processes: number }> {
  const pids = (await execa("pgrep", ["-f", `guest=${vm},`], { reject: false })).stdout
    .split("\n")
    .filter(Boolean);
  const stat = await readFile(`/proc/${pids[0]}/stat`, "utf8");
  const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  const hz = Number((await execa("getconf", ["CLK_TCK"])).stdout);
  const uptime = Number((await readFile("/proc/uptime", "utf8")).split(" ")[0]);
  return { at: Date.now() - uptime * 1000 + (ticks / hz) * 1000, processes: pids.length };
}

export const fileOf = (actions: Action[], id: string) => {
  const a = actions.find((x) => x.id === id);
  if (a?.kind !== "write-file") throw new Error(`no write-file action ${id}`);
  return a;
};

/** Hosts up, corosync and pacemaker started from planHa's files; the cluster not yet formed. */
export async function startHaRig(agentFile?: string): Promise<HaRig> {
  const c = await startCluster();
  try {
    // A bridge takes the lowest MAC of its ports unless one is set: when A's veth goes with A, the
    // bridge's MAC could change under B's ARP entry for the power controller, and B's fence request
    // would time out until that entry expires. Pin it to the MAC it has now.
    const mac = (await readFile(`/sys/class/net/${c.bridge}/address`, "utf8")).trim();
    await execa("ip", ["link", "set", "dev", c.bridge, "address", mac]);
    const vm = `ha-${process.pid}-${Date.now() % 10000}`;
    const net = c.a.address.replace(/\.\d+$/, "");
    const power = await startPowerController(`${net}.254`, [c.a, c.b]);
    const answer = clusterSchema.parse({
      name: "kvmha",
      members: [c.a, c.b].map((h) => ({
        host: h.name,
        address: h.address,
        fence: {
          agent: "other",
          name: FENCE_AGENT,
          options: { ip: power.address, ipport: String(power.port) },
        },
      })),
      networks: { cluster: `${net}.0/24` },
      ha: { vms: [{ vm, prefer: "kvmcl-a" }] },
    });
    // The guest's disk is in a directory both hosts see (a stand-in for the shared store).
    const shared = path.join(c.dir, "shared");
    await mkdir(shared);
    await writeFile(path.join(shared, `${vm}.raw`), counterDisk());
    // cache='none': no host page cache holds the disk's writes when the VM moves between hosts.
    const xml = counterDomain(vm, GUEST_BRIDGE)
      .replace(`/var/lib/libvirt/images/${vm}.raw`, `${shared}/${vm}.raw`)
      .replace("<driver name='qemu' type='raw'/>", "<driver name='qemu' type='raw' cache='none'/>");
    const ctx = { current: new Map(), actions: [], refusals: [], findings: [] } as unknown as PlanContext;
    planHa(ctx, { cluster: answer, self: "kvmcl-a", domainXml: new Map([[vm, xml]]) });
    const actions = ctx.actions;
    const authkey = (await execa("head", ["-c", "256", "/dev/urandom"], { encoding: "buffer" })).stdout;
    const etc = (p: string) => p.replace(/^\/etc\//, "");
    const domain = fileOf(actions, `ha.domain.${vm}`);
    const files = {
      [etc(COROSYNC_CONF)]: fileOf(actions, "ha.corosync-conf").content,
      [etc(COROSYNC_AUTHKEY)]: Buffer.from(authkey),
      [etc(HA_CIB_FILE)]: fileOf(actions, "ha.cib-file").content,
      [etc(domain.path)]: domain.content,
      hosts: `127.0.0.1 localhost\n${c.a.address} ${c.a.name}\n${c.b.address} ${c.b.name}\n`,
    };
    for (const h of [c.a, c.b]) {
      await h.daemon.nsExec("ip", ["link", "add", GUEST_BRIDGE, "type", "bridge"]);
      await h.daemon.nsExec("ip", ["link", "set", GUEST_BRIDGE, "up"]);
      await mkdir(path.join(h.daemon.dirs.log, "qemu"), { recursive: true });
    }
    // libvirt's client certificate where virsh looks for it (VirtualDomain's migrate_to connects to
    // qemu+tls://PEER/system), as the cluster plan's PKI leaves it on a member.
    const pki = async (h: ClusterHost) => {
      const f = (rel: string) => readFile(path.join(h.pkiRoot, "etc/pki", rel));
      return {
        "pki/CA/cacert.pem": await f("CA/cacert.pem"),
        "pki/libvirt/clientcert.pem": await f("libvirt/clientcert.pem"),
        "pki/libvirt/private/clientkey.pem": await f("libvirt/private/clientkey.pem"),
      };
    };
    const [a, b] = await Promise.all(
      [c.a, c.b].map(async (h) => startHaNode(h, c.dir, { ...files, ...(await pki(h)) }, agentFile)),
    );
    return {
      cluster: c,
      power,
      a: a as HaNode,
      b: b as HaNode,
      vm,
      answer,
      actions,
      serial: (h) => readFile(path.join(h.daemon.dirs.log, `qemu/${vm}-serial.log`), "utf8").catch(() => ""),
      stop: async () => {
        await power.stop();
        await c.stop();
      },
    };
  } catch (e) {
    await c.stop();
    throw e;
  }
}

/** Waits for a quorate two-member cluster, loads the CIB with the plan's own command on A, and waits
 *  for the VM to be started on A with its counter running. Returns the time the cluster took to form. */
export async function formAndStart(rig: HaRig): Promise<{ formedMs: number; running: CrmStatus }> {
  const t0 = Date.now();
  await until(
    "both members online in a quorate cluster",
    async () => {
      const s = await rig.b.crmMon();
      return s.quorate && s.nodes.length === 2 && s.nodes.every((n) => n.online) ? s : undefined;
    },
    60_000,
    rig.b,
  );
  const formedMs = Date.now() - t0;
  const load = rig.actions.find((x) => x.id === "ha.cib-load");
  if (load?.kind !== "run-command") throw new Error("no ha.cib-load action");
  await rig.a.exec(load.argv[0] as string, load.argv.slice(1));
  const running = await until(
    "the VM started on its preferred member A",
    async () => {
      const s = await rig.b.crmMon();
      return runsOn(s, vmResourceId(rig.vm)).join() === "kvmcl-a" && runsOn(s, "fence-kvmcl-a").length === 1
        ? s
        : undefined;
    },
    40_000,
    rig.b,
  );
  await until(
    "the counter on A",
    async () => (counters(await rig.serial(rig.cluster.a)).length > 10 ? true : undefined),
    20_000,
  );
  return { formedMs, running };
}

export type Failover = {
  killedAt: number;
  /** The power controller had A off (the fence agent's request done). */
  fencedAt: number | null;
  /** The VM's qemu process started on B. */
  startedAt: number;
  qemuProcesses: number;
  /** crm_mon on B first showed the VM started there. */
  recoveredAt: number;
  status: CrmStatus;
  /** A crm_mon sample while A was unclean (lost, not yet fenced), if one was seen. */
  unclean: CrmStatus | null;
};

/**
 * A fails and pacemaker on B must run the VM. "kill": A's whole namespace is killed (a host dies).
 * "partition": A's only link goes down while A keeps running (its VM too): each side loses the other
 * and tries to fence it; A cannot reach the power controller, B can, so B powers A off and only then
 * starts the VM.
 */
export async function killAAndRecover(rig: HaRig, how: "kill" | "partition" = "kill"): Promise<Failover> {
  const killedAt = Date.now();
  if (how === "kill") process.kill(rig.cluster.a.daemon.pid, "SIGKILL");
  else await rig.cluster.a.daemon.nsExec("ip", ["link", "set", "mig0", "down"]);
  let unclean: CrmStatus | null = null;
  const status = await until(
    "the VM running on B",
    async () => {
      const s = await rig.b.crmMon();
      if (!unclean && s.nodes.some((n) => n.name === "kvmcl-a" && n.unclean)) unclean = s;
      return runsOn(s, vmResourceId(rig.vm)).join() === "kvmcl-b" ? s : undefined;
    },
    60_000,
    rig.b,
  );
  const recoveredAt = Date.now();
  const q = await qemuStartedAt(rig.vm);
  const off = rig.power.events.find((e) => e.host === "kvmcl-a");
  return {
    killedAt,
    fencedAt: off?.offAt ?? null,
    startedAt: q.at,
    qemuProcesses: q.processes,
    recoveredAt,
    status,
    unclean,
  };
}
