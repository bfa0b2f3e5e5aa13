// HA on corosync and pacemaker for the answer's cluster.ha: corosync.conf, the domain XML each HA VM
// is started from, the CIB (rendered by render/corosync-conf.ts and render/cib.ts), corosync and
// pacemaker enabled and started, and the CIB's configuration loaded. The cluster plan calls this after
// it has planned the corosync authkey, the cluster CA and libvirt's TLS (members reach each other's
// libvirtd over TLS for live migration).
//
// Why a VM never runs on two hosts at once:
// - pacemaker alone starts and stops an HA VM: the VirtualDomain agent runs it as a transient domain
//   (`virsh create` of the XML file below, after undefining any persistent definition), and the plan
//   turns libvirt's autostart off for it on every member (ha.no-autostart.*), so neither a libvirtd
//   restart nor a host boot starts it behind pacemaker's back; the VM plan must neither define nor
//   start an HA VM itself;
// - stonith-enabled=true: a lost member, or one that fails to stop a VM, is powered off through its
//   fence device, and pacemaker recovers its VMs only after the fence is confirmed;
// - no-quorum-policy=stop and, with two members, corosync's two_node with wait_for_all: a partition
//   without quorum stops its VMs, and a member that boots alone waits for the other before acting;
// - pacemaker's probes look for each VM on every member when a member joins, before any start.
import type { Cluster } from "../answer/schema-cluster.js";
import { type PlanContext, planCommand, planFile } from "./context.js";
import { HA_DOMAIN_DIR, haDomainPath, renderCibConfiguration } from "./render/cib.js";
import { COROSYNC_CONF, renderCorosyncConf } from "./render/corosync-conf.js";

/** The CIB's <configuration> as loaded, kept on every member so an operator can diff it. */
export const HA_CIB_FILE = `${HA_DOMAIN_DIR}/cib-configuration.xml`;

/** The command that loads that file into the running cluster (the whole configuration section). */
export const cibLoadArgv = (file = HA_CIB_FILE) => [
  "cibadmin",
  "--replace",
  "--scope",
  "configuration",
  "--xml-file",
  file,
];

/** Waits up to 120 s for the local CIB manager to answer (pacemaker has just been started). */
const WAIT_FOR_CIB = [
  "sh",
  "-c",
  "i=0; until cibadmin --query --scope nodes >/dev/null 2>&1; do i=$((i+1)); [ $i -ge 120 ] && exit 1; sleep 1; done",
];

export type HaPlanInput = {
  cluster: Cluster;
  /** This member's hostname (it goes to standby when the plan is undone). */
  self: string;
  /** Each HA VM's domain XML, as the VM plan renders it; a VM missing here is expected on shared storage. */
  domainXml?: ReadonlyMap<string, string>;
};

/**
 * UNIT enabled (ID-enable) and started (ID) as two steps, each with its own check, so undo reverts
 * only what the run changed: Debian's packages enable corosync and pacemaker when installed, and a
 * host that leaves gets them back enabled, only stopped.
 */
function planUnit(ctx: PlanContext, id: string, unit: string, name: string): void {
  planCommand(ctx, {
    id: `${id}-enable`,
    argv: ["systemctl", "enable", unit],
    undo: ["systemctl", "disable", unit],
    check: ["systemctl", "is-enabled", "--quiet", unit],
    effect: "none",
    summary: `enable ${name} (started at boot)`,
  });
  planCommand(ctx, {
    id,
    argv: ["systemctl", "start", unit],
    undo: ["systemctl", "stop", unit],
    check: ["systemctl", "is-active", "--quiet", unit],
    effect: "none",
    summary: `start ${name}`,
  });
}

export function planHa(ctx: PlanContext, input: HaPlanInput): void {
  const c = input.cluster;
  if (!c.ha) return;
  const confChanged = planFile(ctx, {
    id: "ha.corosync-conf",
    path: COROSYNC_CONF,
    content: renderCorosyncConf(c),
    effect: "none",
    summary: `corosync.conf: cluster ${c.name}, ${c.members.length} members over knet with aes256/sha256`,
  });
  for (const v of c.ha.vms) {
    const xml = input.domainXml?.get(v.vm);
    if (xml !== undefined)
      planFile(ctx, {
        id: `ha.domain.${v.vm}`,
        path: haDomainPath(v.vm),
        content: xml,
        effect: "none",
        summary: `the domain XML pacemaker starts ${v.vm} from`,
      });
    // No undo: turning autostart back on for an HA VM is the unsafe state this removes.
    planCommand(ctx, {
      id: `ha.no-autostart.${v.vm}`,
      argv: ["virsh", "autostart", "--disable", v.vm],
      check: ["sh", "-c", '! virsh list --all --autostart --name | grep -qx -- "$0"', v.vm],
      effect: "none",
      summary: `libvirt never autostarts ${v.vm}: pacemaker alone starts it`,
    });
  }
  planFile(ctx, {
    id: "ha.cib-file",
    path: HA_CIB_FILE,
    content: `${renderCibConfiguration(c)}\n`,
    mode: 0o600,
    effect: "none",
    summary: `the CIB: ${c.members.filter((m) => m.fence).length} fence devices, ${c.ha.vms.length} HA VMs`,
  });
  planUnit(ctx, "ha.corosync", "corosync.service", "corosync");
  if (confChanged)
    planCommand(ctx, {
      id: "ha.corosync-reload",
      argv: ["corosync-cfgtool", "-R"],
      // A corosync that ran before the plan reads the new file only on -R. The check runs at this
      // step, after the start above, so a corosync that this plan started rereads the file it just
      // read (harmless); only one that is not running at all skips it.
      check: ["sh", "-c", "! corosync-cfgtool -s >/dev/null 2>&1"],
      effect: "none",
      summary: "corosync rereads corosync.conf",
    });
  // Stopping pacemaker first (undo runs in reverse) moves this member's VMs to the others (a clean
  // shutdown, no fence).
  planUnit(ctx, "ha.pacemaker", "pacemaker.service", "pacemaker");
  planCommand(ctx, {
    id: "ha.wait-cib",
    argv: WAIT_FOR_CIB,
    effect: "none",
    summary: "wait for pacemaker's CIB manager",
  });
  // The configuration is cluster-wide: every member loads the same file, so a re-run on any member
  // converges to it. Undone on one member, it leaves the others' configuration and puts this member
  // in standby, so pacemaker moves its VMs away before pacemaker and corosync stop.
  planCommand(ctx, {
    id: "ha.cib-load",
    argv: cibLoadArgv(),
    undo: ["crm_attribute", "--node", input.self, "--name", "standby", "--update", "on"],
    effect: "none",
    summary: "load the CIB's configuration into the cluster (cibadmin --replace)",
  });
}
