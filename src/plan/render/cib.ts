// Pacemaker's CIB for a kvmstrap cluster: one stonith device per member, one VirtualDomain resource
// per HA VM, their constraints and the cluster options that make fencing come before recovery.
//
// Secrets: a fence device's password never enters the CIB (it is replicated to every member, kept in
// /var/lib/pacemaker/cib and shown by `cibadmin --query`). The device gets the fencing library's
// password_script instead, a command whose output is the password, here `cat` of the answer's
// passwordFile; it runs on the member that fences, at fence time. Chosen over pacemaker's cibsecret
// local store because cibsecret needs a running cluster and copies the secret to every member over
// ssh (`cibsecret sync`), while the answer already puts the file on every member: nothing is copied,
// a rotated password file takes effect at the next fence without a CIB change, and every agent built
// on the fencing library (fence_ipmilan, fence_redfish and the rest) accepts password_script.
//
// No VM runs on two hosts at once: (1) stonith-enabled=true, so a member that is lost or fails to stop
// a VM is fenced, and its resources are recovered elsewhere only once the fence is confirmed;
// (2) no-quorum-policy=stop, so a minority partition stops its VMs rather than keeping them; (3) the
// VirtualDomain agent owns the domain: it undefines a persistent definition and starts the domain
// transient (`virsh create` of the XML file), so libvirt's autostart can never start it outside
// pacemaker, and pacemaker's probes find the domain wherever it runs before any start.
//
// Two members (two_node quorum): when only the ring between them breaks, each keeps quorum and each
// asks to fence the other at once, and with BMCs on another network both requests can land: both
// hosts off. priority-fencing-delay holds back the fencing of the member that runs the HA VMs (each
// has priority 1), so that member fences the other first and keeps its VMs running. The price: when
// that member really dies, the survivor fences it PRIORITY_FENCING_DELAY later.
import type { Cluster, ClusterMember, FenceDevice } from "../../answer/schema-cluster.js";
import { twoNodeQuorum } from "./corosync-conf.js";
import { xmlEscape as e } from "./libvirt-xml.js";

/**
 * Longer than a BMC takes to power a host off (fence_ipmilan's off, then status: a few seconds), so
 * the member running the VMs wins the race; well under pacemaker's stonith-timeout (60 s).
 */
export const PRIORITY_FENCING_DELAY = "10s";

/** Where each member keeps the domain XML the VirtualDomain resource starts (the same on every member). */
export const HA_DOMAIN_DIR = "/etc/kvmstrap/ha";
export const haDomainPath = (vm: string) => `${HA_DOMAIN_DIR}/${vm}.xml`;
export const fenceResourceId = (host: string) => `fence-${host}`;
export const vmResourceId = (vm: string) => `vm-${vm}`;
/** The CIB schema this file is written against (pacemaker 2.1). */
export const CIB_SCHEMA = "pacemaker-3.9";

type Pairs = [string, string][];

function nvset(tag: string, id: string, pairs: Pairs, indent: string): string {
  const lines = pairs.map(
    ([k, v]) => `${indent}  <nvpair id="${e(`${id}-${k}`)}" name="${e(k)}" value="${e(v)}"/>`,
  );
  return `${indent}<${tag} id="${e(id)}">\n${lines.join("\n")}\n${indent}</${tag}>`;
}

function ops(rsc: string, list: [name: string, interval: string, timeout: string][], indent: string): string {
  const lines = list.map(
    ([name, interval, timeout]) =>
      `${indent}  <op id="${e(`${rsc}-${name}-${interval}`)}" name="${name}" interval="${interval}" timeout="${timeout}"/>`,
  );
  return `${indent}<operations>\n${lines.join("\n")}\n${indent}</operations>`;
}

/** A shell word for password_script (the fencing library runs it through a shell). */
const shellWord = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const passwordScript = (file: string) => `cat ${shellWord(file)}`;

/** The stonith agent and its parameters for one member's fence device; no password, only its file. */
export function fenceAgent(m: ClusterMember & { fence: FenceDevice }): { type: string; params: Pairs } {
  const f = m.fence;
  const params: Pairs = [];
  let type: string;
  if (f.agent === "ipmilan") {
    type = "fence_ipmilan";
    params.push(
      ["ip", f.address],
      ["username", f.username],
      ["password_script", passwordScript(f.passwordFile)],
    );
    if (f.lanplus) params.push(["lanplus", "1"]);
  } else if (f.agent === "redfish") {
    type = "fence_redfish";
    params.push(
      ["ip", f.address],
      ["username", f.username],
      ["password_script", passwordScript(f.passwordFile)],
    );
    if (f.systemId) params.push(["systems_uri", f.systemId]);
  } else {
    type = f.name;
    params.push(...Object.entries(f.options).sort(([a], [b]) => a.localeCompare(b)));
    if (f.passwordFile) params.push(["password_script", passwordScript(f.passwordFile)]);
  }
  // The device fences exactly this member, whatever the agent's own list would say.
  params.push(["pcmk_host_list", m.host], ["pcmk_host_check", "static-list"]);
  return { type, params };
}

function stonithPrimitive(m: ClusterMember & { fence: FenceDevice }): string {
  const id = fenceResourceId(m.host);
  const { type, params } = fenceAgent(m);
  return [
    `      <primitive id="${e(id)}" class="stonith" type="${e(type)}">`,
    nvset("instance_attributes", `${id}-params`, params, "        "),
    ops(id, [["monitor", "60s", "20s"]], "        "),
    "      </primitive>",
  ].join("\n");
}

function vmPrimitive(vm: { vm: string; policy: "restart" | "migrate" }): string {
  const id = vmResourceId(vm.vm);
  const params: Pairs = [
    ["config", haDomainPath(vm.vm)],
    ["hypervisor", "qemu:///system"],
    // Live migration between members goes over libvirt's TLS (qemu+tls://NODE/system).
    ["migration_transport", "tls"],
  ];
  const list: [string, string, string][] = [
    ["start", "0s", "90s"],
    ["stop", "0s", "90s"],
    ["monitor", "10s", "30s"],
  ];
  const meta: Pairs = [
    ["allow-migrate", vm.policy === "migrate" ? "true" : "false"],
    // What priority-fencing-delay weighs: the member running it is the one to keep.
    ["priority", "1"],
  ];
  if (vm.policy === "migrate") {
    // The agent runs `virsh migrate --live` with only these options added, and every member's qemu.conf
    // has migrate_tls_force (cluster-plan.ts): without --tls libvirt refuses the migration, and
    // pacemaker's planned move (standby, crm_resource --move) fails. --p2p as `kvmstrap vm migrate`:
    // the source's libvirtd, with the member's client certificate, drives it.
    params.push(["migrate_options", "--p2p --tls"]);
    list.push(["migrate_to", "0s", "120s"], ["migrate_from", "0s", "120s"]);
  }
  return [
    `      <primitive id="${e(id)}" class="ocf" provider="heartbeat" type="VirtualDomain">`,
    nvset("instance_attributes", `${id}-params`, params, "        "),
    nvset("meta_attributes", `${id}-meta`, meta, "        "),
    ops(id, list, "        "),
    "      </primitive>",
  ].join("\n");
}

/** The <configuration> element kvmstrap loads (`cibadmin --replace --scope configuration`). */
export function renderCibConfiguration(c: Cluster): string {
  const fenced = c.members.filter((m): m is ClusterMember & { fence: FenceDevice } => m.fence !== undefined);
  const vms = c.ha?.vms ?? [];
  const options: Pairs = [
    ["cluster-name", c.name],
    ["stonith-enabled", "true"],
    ["no-quorum-policy", "stop"],
  ];
  if (twoNodeQuorum(c) && vms.length > 0) options.push(["priority-fencing-delay", PRIORITY_FENCING_DELAY]);
  const constraints = [
    // A member never runs the device that fences it (it could not fence itself once lost).
    ...fenced.map(
      (m) =>
        `      <rsc_location id="${e(`${fenceResourceId(m.host)}-avoids-${m.host}`)}" rsc="${e(fenceResourceId(m.host))}" node="${e(m.host)}" score="-INFINITY"/>`,
    ),
    ...vms
      .filter((v) => v.prefer)
      .map(
        (v) =>
          `      <rsc_location id="${e(`${vmResourceId(v.vm)}-prefers-${v.prefer}`)}" rsc="${e(vmResourceId(v.vm))}" node="${e(v.prefer ?? "")}" score="100"/>`,
      ),
  ];
  const block = (tag: string, body: string[]) =>
    body.length ? `    <${tag}>\n${body.join("\n")}\n    </${tag}>` : `    <${tag}/>`;
  return [
    "  <configuration>",
    "    <crm_config>",
    nvset("cluster_property_set", "kvmstrap-options", options, "      "),
    "    </crm_config>",
    "    <nodes/>",
    block("resources", [...fenced.map(stonithPrimitive), ...vms.map(vmPrimitive)]),
    block("constraints", constraints),
    "  </configuration>",
  ].join("\n");
}

/** A whole CIB document holding that configuration (what crm_verify --xml-file checks). */
export function renderCib(c: Cluster): string {
  return `<cib validate-with="${CIB_SCHEMA}" admin_epoch="0" epoch="1" num_updates="0">\n${renderCibConfiguration(c)}\n  <status/>\n</cib>\n`;
}
