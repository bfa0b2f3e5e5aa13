// `deployVm`: one VM from a base image and a cloud-init seed, as plan actions carried out by the
// apply engine through the libvirt port: define the domain, the overlay, the seed, kvmstrap's record,
// the start (plan/vm-plan.ts builds them, the same actions `kvmstrap plan` shows for an answer's
// vms:). The run is journaled (the CLI passes apply's state dir, so `kvmstrap undo` finds it; a
// library caller that passes none gets <VM dir>/.journal), so a deploy killed at any
// instant converges when run again, and a deploy that fails undoes its own run: it leaves nothing
// behind. A deploy of a spec kvmstrap already deployed under that name converges (starts the domain
// when it is stopped) instead of failing or duplicating.
import { stat } from "node:fs/promises";
import path from "node:path";
import { applyPlan, undoLastRun } from "../apply/engine.js";
import { type ApplyEvent, EventBus } from "../apply/events.js";
import { vmStepError } from "../apply/vm-steps.js";
import type { HostReport } from "../detect/types.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { RootedTargetFs, type TargetFs } from "../host/target.js";
import { PLAN_SCHEMA_ID, type Plan } from "../plan/actions.js";
import { VLAN_HOOK_PATH } from "../plan/vlan-hook-plan.js";
import { vmActions } from "../plan/vm-plan.js";
import { loadSeedTemplates } from "./cloud-init.js";
import { type Libvirt, LibvirtError } from "./libvirt.js";
import { preflightVm } from "./preflight.js";
import { specHash, type VmSpec } from "./vm-spec.js";
import { DEFAULT_VM_DIR, DeployError, VM_NAME, vmPaths } from "./vm-state.js";

export { checkImage } from "./overlay.js";
export { specHash, type VmSpec, type VmUser, vmMac } from "./vm-spec.js";
export { DEFAULT_VM_DIR, DeployError, type DeployErrorCode } from "./vm-state.js";

export type DeployDeps = {
  libvirt: Libvirt;
  report: HostReport;
  /** Where overlays, seeds, logs and records go (default /var/lib/kvmstrap/vms). */
  dir?: string;
  /** The image cache consulted when spec.image is a name (default /var/lib/kvmstrap/images). */
  imageCache?: string;
  bus?: EventBus;
  /** cloud-init phone_home target, e.g. from startPhoneHomeServer(); "$INSTANCE_ID" is substituted. */
  phoneHome?: { url: string };
  runner?: CommandRunner;
  /** Where bridges are looked up (default /sys/class/net). */
  sysClassNet?: string;
  /** The deploy journal (the CLI: apply's state dir; default <dir>/.journal): undo reverses a deploy. */
  stateDir?: string;
  /** The filesystem the VM's files are written through (default the host's /). */
  target?: TargetFs;
  /** Free bytes at a path (tests); default statfs. */
  freeBytes?: (dir: string) => Promise<number>;
};

export type DeployResult = {
  name: string;
  /** true: the domain already existed from this spec and was (re)started, nothing was created. */
  converged: boolean;
  domainType: "kvm" | "qemu";
  instanceId: string;
  overlay: string;
  seed: string;
  serialLog: string;
  base: string;
  warnings: string[];
  /** Milliseconds per step, in order. */
  steps: { id: string; durationMs: number }[];
  /** The journal run that carried the deploy out. */
  runId: string;
};

/** Turns a libvirt connection failure into the one clear message; other errors pass through. */
export function libvirtDown(e: unknown, uri: string): unknown {
  if (e instanceof LibvirtError && e.code === "connect") {
    return new DeployError(
      "libvirt-unreachable",
      `libvirtd is not running or not reachable at ${uri}: ${e.message}`,
      "start libvirtd (systemctl start libvirtd) or pass --connect with the right URI",
      { cause: e },
    );
  }
  return e;
}

function validateSpec(spec: VmSpec): void {
  const bad = (m: string) => {
    throw new DeployError("invalid", `VM ${spec.name}: ${m}`);
  };
  if (!VM_NAME.test(spec.name)) bad(`the name must be ${VM_NAME.describe}`);
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > 512) bad("vcpus must be 1-512");
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 64) bad("memory must be at least 64 MiB");
  if (!(spec.diskGiB > 0)) bad("disk size must be positive");
  if (spec.nics.length === 0) bad("at least one NIC (--network or --bridge)");
  try {
    loadSeedTemplates(spec.template);
  } catch (e) {
    throw new DeployError(
      "invalid",
      `VM ${spec.name}: unknown or unusable template ${spec.template ?? "(default)"}: ${(e as Error).message}`,
      "a template is a directory with user-data.yaml, meta-data.yaml and network-config.yaml",
    );
  }
}

async function checkNics(spec: VmSpec, deps: DeployDeps): Promise<string> {
  const sysNet = deps.sysClassNet ?? "/sys/class/net";
  const networks = spec.nics.some((n) => n.kind === "network" || n.kind === "hostdev-network")
    ? await deps.libvirt.netList()
    : [];
  for (const n of spec.nics) {
    if (n.kind === "bridge") {
      const ok = await stat(path.join(sysNet, n.bridge, "bridge")).then(
        () => true,
        () => false,
      );
      if (!ok) {
        throw new DeployError(
          "no-bridge",
          `bridge ${n.bridge} does not exist on this host`,
          "create it first (kvmstrap plan/apply with a bridge), or use --network",
        );
      }
      // Only kvmstrap's qemu hook sets a VLAN on a Linux bridge port: without it the VM would run untagged.
      const target = deps.target ?? new RootedTargetFs("/");
      if (n.vlan !== undefined && (await target.read(VLAN_HOOK_PATH)) === null) {
        throw new DeployError(
          "no-bridge",
          `VLAN ${n.vlan} on bridge ${n.bridge} needs kvmstrap's qemu hook (${VLAN_HOOK_PATH}), which is not installed: the VM would run untagged`,
          "kvmstrap apply an answer with this VM first: it installs the hook and restarts libvirtd",
        );
      }
    } else if (n.kind === "network" || n.kind === "hostdev-network") {
      const net = networks.find((x) => x.name === n.network);
      if (!net) {
        throw new DeployError(
          "no-network",
          `libvirt network ${n.network} does not exist`,
          `virsh -c ${deps.libvirt.uri} net-list --all shows the networks`,
        );
      }
      if (!net.active) {
        throw new DeployError(
          "no-network",
          `libvirt network ${n.network} is not active`,
          `virsh -c ${deps.libvirt.uri} net-start ${n.network}`,
        );
      }
    }
  }
  return spec.nics
    .map((n) =>
      // An OVS bridge is not checked here: libvirt's ovs-vsctl refuses a missing one at start.
      n.kind === "bridge"
        ? `bridge ${n.bridge}`
        : n.kind === "ovs"
          ? `ovs ${n.bridge}${n.vlan !== undefined ? ` vlan ${n.vlan}` : n.trunk ? ` trunk ${n.trunk.join(",")}` : ""}`
          : `${n.kind} ${"network" in n ? n.network : n.dev}`,
    )
    .join(", ");
}

/** A check before the plan runs, reported as a step of the deploy. */
async function check<T>(
  bus: EventBus,
  steps: DeployResult["steps"],
  id: string,
  summary: string,
  fn: () => Promise<T>,
  detail: (v: T) => string,
): Promise<T> {
  const t0 = performance.now();
  const emit = (e: Omit<Extract<ApplyEvent, { type: "step" }>, "type" | "time" | "id" | "summary">) =>
    bus.emit({ type: "step", id, summary, time: new Date().toISOString(), ...e });
  emit({ phase: "started" });
  try {
    const v = await fn();
    const durationMs = Math.round(performance.now() - t0);
    steps.push({ id: id.split(".").at(-1) as string, durationMs });
    emit({ phase: "finished", durationMs, detail: detail(v) });
    return v;
  } catch (e) {
    const remediation = e instanceof DeployError ? e.remediation : undefined;
    emit({
      phase: "failed",
      durationMs: Math.round(performance.now() - t0),
      error: (e as Error).message,
      remediation,
    });
    throw e;
  }
}

export async function deployVm(spec: VmSpec, deps: DeployDeps): Promise<DeployResult> {
  const runner = deps.runner ?? new ExecaRunner();
  const vmDir = deps.dir ?? DEFAULT_VM_DIR;
  const stateDir = deps.stateDir ?? path.join(vmDir, ".journal");
  const target = deps.target ?? new RootedTargetFs("/");
  const lv = deps.libvirt;
  const bus = deps.bus ?? new EventBus();
  const p = vmPaths(vmDir, spec.name);
  const steps: DeployResult["steps"] = [];
  const sid = (what: string) => `vm.${spec.name}.${what}`;
  try {
    validateSpec(spec);
    await check(
      bus,
      steps,
      sid("nics"),
      "check the NICs' bridges and networks",
      () => checkNics(spec, deps),
      (d) => d,
    );
    const pre = await check(
      bus,
      steps,
      sid("preflight"),
      "check space, devices and placement",
      () =>
        preflightVm(spec, {
          report: deps.report,
          libvirt: lv,
          vmDir,
          ...(deps.freeBytes ? { freeBytes: deps.freeBytes } : {}),
        }),
      (r) => r.summary,
    );
    const vp = vmActions(
      spec,
      deps.report,
      {
        vmDir,
        ...(deps.imageCache ? { cacheDir: deps.imageCache } : {}),
        ...(deps.phoneHome ? { phoneHomeUrl: deps.phoneHome.url } : {}),
      },
      await target.read(p.record),
      { placement: pre.placement, vhostNet: pre.vhostNet },
    );
    const plan: Plan = {
      schema: PLAN_SCHEMA_ID,
      answerDigest: specHash(spec),
      actions: vp.actions,
      refusals: [],
      needsReboot: false,
    };
    const seen = new Map<string, { durationMs: number; skipped: boolean }>();
    const off = bus.subscribe((e) => {
      if (e.type === "step" && (e.phase === "finished" || e.phase === "skipped") && e.id.startsWith(sid("")))
        seen.set(e.id, { durationMs: e.durationMs ?? 0, skipped: e.phase === "skipped" });
    });
    const options = { target, runner, libvirt: lv, stateDir, bus };
    let r: Awaited<ReturnType<typeof applyPlan>>;
    try {
      r = await applyPlan(plan, options);
    } finally {
      off();
    }
    if (r.status !== "succeeded") {
      const cause = vmStepError(options) ?? new DeployError("failed", r.error ?? `deploy ${r.status}`);
      // A failed deploy leaves nothing behind: its own run is undone (the journal knows what it made).
      const undone = await undoLastRun({ target, runner, libvirt: lv, stateDir, runId: r.runId }).catch(
        (e: Error) => ({ status: "failed" as const, error: e.message }),
      );
      if (undone.status === "failed" && cause instanceof Error)
        cause.message += ` (and cleaning up failed: ${undone.error}; kvmstrap undo --state-dir ${stateDir})`;
      throw cause;
    }
    for (const a of vp.actions) {
      const s = seen.get(a.id);
      if (s) steps.push({ id: a.id.slice(sid("").length), durationMs: s.durationMs });
    }
    return {
      name: spec.name,
      converged: seen.get(sid("define"))?.skipped === true,
      domainType: vp.domainType,
      instanceId: vp.instanceId,
      overlay: p.overlay,
      seed: p.seed,
      serialLog: p.serialLog,
      base: spec.image,
      warnings: [...vp.notes.filter((n) => n.startsWith("KVM")), ...pre.warnings],
      steps,
      runId: r.runId,
    };
  } catch (e) {
    throw libvirtDown(e, lv.uri);
  }
}
