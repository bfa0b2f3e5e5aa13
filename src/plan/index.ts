// plan: a pure function from (host report, answer, current content of the managed files) to an
// ordered list of actions, each carrying its inverse and what it needs afterwards. No I/O: the CLI
// reads the current files through the port and hands them in; apply/ carries the actions out.
// Order matters: modules and VFIO before SR-IOV and storage, networking last so the confirm timer
// covers only what can cut the operator off.
import { createHash } from "node:crypto";
import { errorsOf, type Finding } from "../answer/rules/index.js";
import type { Answer } from "../answer/schema.js";
import { validateAnswer } from "../answer/validate.js";
import { canonicalJson } from "../core/canonical-json.js";
import type { HostReport } from "../detect/types.js";
import type { Plan } from "./actions.js";
import { planBackups } from "./backup-plan.js";
import { planCluster } from "./cluster-plan.js";
import { planConsoles } from "./console-plan.js";
import { type PlanContext, planCommand, planFile } from "./context.js";
import { planHardening } from "./hardening-plan.js";
import { planHost } from "./host-plan.js";
import { PATHS, planKernel, wantedCmdline } from "./kernel-plan.js";
import { METRICS_UNIT_PATH, planMetrics } from "./metrics-plan.js";
import { networkPaths, planNetwork } from "./network-plan.js";
import { planPassthrough } from "./passthrough-plan.js";
import { planSriov } from "./sriov-plan.js";
import { planLibvirtNat, planStorage } from "./storage-plan.js";
import { planVlanHook } from "./vlan-hook-plan.js";
import { planVms, type VmPlanOptions, vmRecordPaths } from "./vm-plan.js";
import { planLibvirtNetworks, planOvs } from "./vswitch-plan.js";

export type { Action, Effect, Plan } from "./actions.js";

export interface PlanOptions extends VmPlanOptions {
  /**
   * The validation's findings for this answer on this host (validateAnswer(...).findings), when the
   * caller has them: prepare validates once and plans twice (planFiles, then the plan), so the rule
   * set runs once. Without them the plan validates (the same rules, with the same baseDir).
   */
  findings?: readonly Finding[];
}

export function buildPlan(
  report: HostReport,
  answer: Answer,
  current: ReadonlyMap<string, string | null> = new Map(),
  o: PlanOptions = {},
): Plan {
  // The rule set decides what is refused; the planners below skip those items and decide no safety.
  const { findings: given, ...vms } = o;
  const findings =
    given ?? validateAnswer(answer, report, o.baseDir !== undefined ? { baseDir: o.baseDir } : {}).findings;
  const refusals = errorsOf(findings).map((f) => ({ path: f.path, reason: f.message, ruleId: f.ruleId }));
  const ctx: PlanContext = { report, answer, current, actions: [], refusals, findings };
  planHost(ctx);
  const vfio = planPassthrough(ctx);
  planKernel(ctx, vfio.softdeps, vfio.devices.length ? ["vfio", "vfio_iommu_type1", "vfio_pci"] : []);
  planSriov(ctx);
  planStorage(ctx);
  planLibvirtNat(ctx);
  planLibvirtNetworks(ctx);
  planNetwork(ctx);
  planOvs(ctx);
  // Before any VM starts: the hook sets a VM's VLAN on its Linux bridge port at each start.
  planVlanHook(ctx);
  planConsoles(ctx);
  planHardening(ctx);
  // After hardening: the cluster block follows its libvirtd.conf/qemu.conf blocks.
  planCluster(ctx);
  // Everything that needs the reboot goes last, after the unit that resumes the run once it is
  // over: the engine stops at the end of a reboot group, so nothing is left waiting behind it.
  const reboot = ctx.actions.filter((a) => a.effect === "reboot");
  const needsReboot = reboot.length > 0;
  ctx.actions = ctx.actions.filter((a) => a.effect !== "reboot");
  if (needsReboot) planResumeUnit(ctx);
  ctx.actions.push(...reboot);
  // VMs last: after the network is confirmed, and after the reboot their passthrough devices need.
  planVms(ctx, vms);
  // Backup timers after the VMs they back up.
  planBackups(ctx);
  planMetrics(ctx);
  return {
    schema: "kvmstrap.plan/1",
    answerDigest: answerDigest(answer),
    actions: ctx.actions,
    refusals: ctx.refusals,
    needsReboot,
    expect: {
      cmdlineParams: wantedCmdline(ctx),
      vfio: vfio.devices.map((d) => d.address),
      iommuGroups: answer.iommu?.enabled === true,
    },
  };
}

export const RESUME_UNIT_PATH = "/etc/systemd/system/kvmstrap-resume.service";

/** The first-boot unit that resumes the run after its reboot, verifies it, then disables itself. */
function planResumeUnit(ctx: PlanContext): void {
  planFile(ctx, {
    id: "resume.unit",
    path: RESUME_UNIT_PATH,
    content: [
      "# Managed by kvmstrap: resumes an apply after the reboot it needed, then disables itself.",
      "[Unit]",
      "Description=kvmstrap: resume the apply after its reboot",
      "After=network-online.target libvirtd.service kvmstrap-vfio-bind.service",
      "Wants=network-online.target",
      "",
      "[Service]",
      "Type=oneshot",
      "ExecStart=/usr/bin/env kvmstrap apply --resume --yes --events /var/lib/kvmstrap/log/resume.jsonl",
      "ExecStartPost=/bin/systemctl disable kvmstrap-resume.service",
      "",
      "[Install]",
      "WantedBy=multi-user.target",
      "",
    ].join("\n"),
    effect: "none",
    summary: "first-boot unit: resume and verify this apply after the reboot",
  });
  planCommand(ctx, {
    id: "resume.enable",
    argv: ["systemctl", "enable", "kvmstrap-resume.service"],
    undo: ["systemctl", "disable", "kvmstrap-resume.service"],
    effect: "none",
    summary: "enable the resume unit for the next boot",
  });
}

/** Every file a plan for this answer may read or write: read them before planning for real. */
export function planFiles(report: HostReport, answer: Answer, o: PlanOptions = {}): string[] {
  const dry = buildPlan(report, answer, new Map(), o);
  const paths = dry.actions.flatMap((a) =>
    a.kind === "write-file" || a.kind === "remove-file" ? [a.path] : [],
  );
  return [
    ...new Set([
      ...paths,
      PATHS.grub,
      PATHS.kernelCmdline,
      ...networkPaths(),
      // The exporter's unit, read even without a metrics: section (the plan removes it then).
      METRICS_UNIT_PATH,
      // The VMs' records, which a plan writes too (read even when a VM is refused in the dry plan).
      ...vmRecordPaths(answer.vms?.map((v) => v.name) ?? []),
      // Files a plan may take over (GRUB drop-ins, network stack configs): read before planning too.
      ...(report.system.configFiles ?? []),
    ]),
  ];
}

export function answerDigest(answer: Answer): string {
  return createHash("sha256").update(canonicalJson(answer)).digest("hex");
}
