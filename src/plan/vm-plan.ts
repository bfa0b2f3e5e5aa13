// The answer's vms: as plan actions, in the order a deploy needs them: define the domain (first, so
// a name another domain holds stops the deploy before any file is made), the disk overlay on the
// base image, the cloud-init seed, kvmstrap's record of the VM, and the start. Each has its inverse
// (apply/vm-steps.ts), so the journal records a deploy and undo reverses it. `vm deploy` builds the
// same actions from the same spec (vmActions), so both paths deploy a VM the same way.
import { matchPci } from "../answer/match.js";
import type { HostReport } from "../detect/types.js";
import { loadSeedTemplates, renderSeed } from "../vm/cloud-init.js";
import { renderDomainXml } from "../vm/domain-xml.js";
import { vmSpecsFromAnswer } from "../vm/from-answer.js";
import { DEFAULT_CACHE_DIR } from "../vm/images.js";
import { type Placement, placeVm } from "../vm/placement.js";
import { placeTogether } from "../vm/preflight.js";
import { specHash, type VmSpec, vmMac } from "../vm/vm-spec.js";
import { DEFAULT_VM_DIR, type VmRecord, vmPaths } from "../vm/vm-state.js";
import type { Action } from "./actions.js";
import { currentOf, type PlanContext, planFile, refuse } from "./context.js";
import { haDomainPath } from "./render/cib.js";
import { planStoreDiskFill } from "./store-disk-plan.js";

export interface VmPlanOptions {
  /** Where overlays, seeds, logs and records go (default /var/lib/kvmstrap/vms). */
  vmDir?: string;
  /** The image cache a VM's image name is looked up in (default /var/lib/kvmstrap/images). */
  cacheDir?: string;
  /** Where a relative template path starts: the answer file's directory (default: cwd). */
  baseDir?: string;
  /** cloud-init phone_home target, e.g. from startPhoneHomeServer(). */
  phoneHomeUrl?: string;
}

export interface VmPlan {
  actions: Action[];
  instanceId: string;
  domainType: "kvm" | "qemu";
  /** Said once per deploy: a TCG fallback, where the vCPUs were placed. */
  notes: string[];
}

const GiB = 2 ** 30;

/** The actions that deploy one VM. `currentRecord`: the VM's record file now (null: absent). */
export function vmActions(
  spec: VmSpec,
  report: HostReport,
  o: VmPlanOptions,
  currentRecord: string | null,
  /** What a deploy's preflight decided (CPUs allocated across VMs, vhost-net); else from the report. */
  decided?: { placement: Placement | null; vhostNet: boolean },
): VmPlan {
  const p = vmPaths(o.vmDir ?? DEFAULT_VM_DIR, spec.name);
  const id = (what: string) => `vm.${spec.name}.${what}`;
  const seed = renderSeed(
    {
      hostname: spec.hostname ?? spec.name,
      user: spec.user,
      packages: spec.packages ?? [],
      runcmd: spec.runcmd ?? [],
      ...(o.phoneHomeUrl ? { phoneHomeUrl: o.phoneHomeUrl } : {}),
      // No network-config: cloud-init's fallback (DHCP on the first NIC) works on every renderer.
    },
    loadSeedTemplates(spec.template),
  );
  const usable = report.kvm.probe.verdict === "usable";
  const domainType = usable ? "kvm" : "qemu";
  const notes: string[] = [];
  if (!usable)
    notes.push(
      `KVM is not usable here (${report.kvm.probe.detail}): the VM runs under TCG emulation, much slower`,
    );
  const placement = decided
    ? decided.placement
    : spec.pin
      ? placeVm(report, spec.hostdevs ?? [], { vcpus: spec.vcpus })
      : null;
  const vhostNet = decided ? decided.vhostNet : report.kvm.vhostNet === true;
  if (placement) notes.push(`placement: ${placement.reason}`);
  const hash = specHash(spec);
  const xml = renderDomainXml({
    name: spec.name,
    domainType,
    vcpus: spec.vcpus,
    memoryMiB: spec.memoryMiB,
    disk: { path: p.overlay, format: "qcow2" },
    ...(spec.sharedDisk ? { sharedDisk: spec.sharedDisk } : {}),
    seed: { path: p.seed },
    nics: spec.nics.map((n, i) => ({ ...n, mac: n.mac ?? vmMac(spec.name, i) })),
    hostdevs: spec.hostdevs,
    uefi: spec.uefi,
    hugepages: spec.hugepages,
    ...(placement?.cpus.length ? { pinning: { cpus: placement.cpus, node: placement.node } } : {}),
    kernel: spec.kernel,
    serialLog: p.serialLog,
    specHash: hash,
    vhostNet,
    ...(spec.graphics ? { graphics: spec.graphics } : {}),
  });
  const record: VmRecord = {
    version: 1,
    name: spec.name,
    specHash: hash,
    base: spec.image,
    overlay: p.overlay,
    seed: p.seed,
    serialLog: p.serialLog,
    instanceId: seed.instanceId,
    domainType,
  };
  const recordText = `${JSON.stringify(record, null, 2)}\n`;
  const actions: Action[] = [
    {
      kind: "libvirt",
      op: "define-domain",
      id: id("define"),
      summary: `VM ${spec.name}: define the domain (${domainType}, ${spec.vcpus} vCPUs, ${spec.memoryMiB} MiB)`,
      effect: "none",
      name: spec.name,
      xml,
      specHash: hash,
      nvram: Boolean(spec.uefi),
      logs: [p.serialLog],
      remediation: `kvmstrap vm list shows the domains; pick another name or kvmstrap vm delete ${spec.name}`,
    },
    // A disk on a cluster store is used as it is: no overlay on this host.
    ...(spec.sharedDisk
      ? []
      : [
          {
            kind: "vm-overlay" as const,
            id: id("overlay"),
            summary: `VM ${spec.name}: a ${spec.diskGiB} GiB overlay disk on ${spec.image}`,
            effect: "none" as const,
            path: p.overlay,
            image: spec.image,
            cacheDir: o.cacheDir ?? DEFAULT_CACHE_DIR,
            sizeBytes: Math.round(spec.diskGiB * GiB),
            remediation: "kvmstrap image list shows the cached images; image pull|import adds one",
          },
        ]),
    {
      kind: "vm-seed",
      id: id("seed"),
      summary: `VM ${spec.name}: the cloud-init seed (instance-id ${seed.instanceId})`,
      effect: "none",
      path: p.seed,
      userData: seed.userData,
      metaData: seed.metaData,
      networkConfig: seed.networkConfig,
    },
  ];
  if (currentRecord !== recordText) {
    actions.push({
      kind: "write-file",
      id: id("record"),
      summary: `VM ${spec.name}: kvmstrap's record of the deployment`,
      effect: "none",
      path: p.record,
      content: recordText,
      mode: 0o644,
      previous: currentRecord,
    });
  }
  actions.push({
    kind: "libvirt",
    op: "start-domain",
    id: id("start"),
    summary: `VM ${spec.name}: start it`,
    effect: "none",
    name: spec.name,
  });
  return { actions, instanceId: seed.instanceId, domainType, notes };
}

/** The record files a plan for these VMs reads (so the planner knows what they hold now). */
export function vmRecordPaths(names: string[], o: VmPlanOptions = {}): string[] {
  return names.map((n) => vmPaths(o.vmDir ?? DEFAULT_VM_DIR, n).record);
}

/** Plans every entry of the answer's vms: whose rules resolve on this host; the rest are refused. */
export function planVms(ctx: PlanContext, o: VmPlanOptions = {}): void {
  if (!ctx.answer.vms?.length) return;
  const { specs, errors } = vmSpecsFromAnswer(ctx.answer, ctx.report, {
    ...(o.baseDir !== undefined ? { baseDir: o.baseDir } : {}),
    findings: ctx.findings,
  });
  const refused = new Set(ctx.refusals.map((r) => r.path));
  for (const e of errors) if (!refused.has(e.path)) refuse(ctx, e.path, e.message);
  // Pinned VMs get their CPUs allocated across all the answer's VMs in order, as the rule set
  // (vms.pinning, vms.hugepages) saw them, refused ones included.
  const all = placeTogether(
    ctx.report,
    ctx.answer.vms.map((vm) => ({
      vcpus: vm.vcpus,
      pin: vm.pin,
      hostdevs: (vm.passthrough ?? []).flatMap((r) => matchPci(r, ctx.report).chosen.map((d) => d.address)),
    })),
  );
  const placements = specs.map((s) => all[ctx.answer.vms.findIndex((v) => v.name === s.name)] ?? null);
  const vhostNet = ctx.report.kvm.vhostNet === true;
  const ha = new Set((ctx.answer.cluster?.ha?.vms ?? []).map((v) => v.vm));
  for (const [k, spec] of specs.entries()) {
    const record = vmPaths(o.vmDir ?? DEFAULT_VM_DIR, spec.name).record;
    const decided = { placement: placements[k] ?? null, vhostNet };
    try {
      const entry = ctx.answer.vms.find((v) => v.name === spec.name);
      if (entry?.store) planStoreDiskFill(ctx, ctx.answer, entry, ctx.report, o);
      const { actions } = vmActions(spec, ctx.report, o, currentOf(ctx, record), decided);
      if (ha.has(spec.name)) haVmActions(ctx, spec.name, actions);
      else ctx.actions.push(...actions);
    } catch (e) {
      const i = ctx.answer.vms.findIndex((v) => v.name === spec.name);
      refuse(ctx, `vms[${i}]`, (e as Error).message);
    }
  }
}

/**
 * An HA VM (cluster.ha.vms) belongs to pacemaker: its VirtualDomain resource starts it, on one member
 * at a time, from the XML file the CIB names (ha.domain.*), after undefining any persistent
 * definition. So the VM plan neither defines nor starts it (either would run it, or bring its
 * definition back, behind pacemaker's back; libvirt autostart needs a definition too): it writes
 * that file from the same domain XML, beside the seed and record a deploy makes.
 */
function haVmActions(ctx: PlanContext, name: string, actions: Action[]): void {
  for (const a of actions) {
    if (a.kind === "libvirt" && a.op === "define-domain")
      planFile(ctx, {
        id: `vm.${name}.ha-domain`,
        path: haDomainPath(name),
        content: a.xml,
        effect: "none",
        summary: `VM ${name}: the domain XML pacemaker starts it from (HA: not defined or started here)`,
      });
    else if (!(a.kind === "libvirt" && a.op === "start-domain")) ctx.actions.push(a);
  }
}
