// The answer's backups: as systemd units: per VM a oneshot service running `kvmstrap vm backup`
// (incremental, a new full chain every fullEvery backups, keep chains) and a timer on its calendar,
// written as files (their inverse restores what was there) and the timer enabled (its inverse
// disables it); a changed calendar is first checked by `systemd-analyze calendar`.
// Persistent=true: a backup missed while the host was off runs at the next boot.
// A VM whose entry left the answer has its units (found by detect, report.system.configFiles)
// stopped, disabled and removed: each step with its inverse, so an undo brings the schedule back.
import type { BackupSchedule } from "../answer/schema-backup.js";
import { BACKUP_UNIT_FILE, BACKUP_UNIT_PREFIX, SYSTEMD_UNIT_DIR } from "../detect/system.js";
import type { Action } from "./actions.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";

export const UNIT_DIR = SYSTEMD_UNIT_DIR;
export const backupUnitName = (vm: string) => `${BACKUP_UNIT_PREFIX}${vm}`;

export function renderBackupService(s: BackupSchedule): string {
  const argv = [
    "/usr/bin/env kvmstrap vm backup",
    s.vm,
    "--to",
    s.to,
    "--incremental",
    "--full-every",
    String(s.fullEvery),
    "--keep",
    String(s.keep),
  ];
  return `# Written by kvmstrap from the answer's backups: entry for ${s.vm}.
[Unit]
Description=kvmstrap backup of VM ${s.vm}
Wants=libvirtd.service
After=libvirtd.service

[Service]
Type=oneshot
ExecStart=${argv.join(" ")}
Nice=10
IOSchedulingClass=idle
`;
}

export function renderBackupTimer(s: BackupSchedule): string {
  return `# Written by kvmstrap from the answer's backups: entry for ${s.vm}.
[Unit]
Description=Scheduled kvmstrap backup of VM ${s.vm}

[Timer]
OnCalendar=${s.calendar}
Persistent=true
Unit=${backupUnitName(s.vm)}.service

[Install]
WantedBy=timers.target
`;
}

export function planBackups(ctx: PlanContext): void {
  planRemovedBackups(ctx);
  for (const [i, s] of (ctx.answer.backups ?? []).entries()) {
    if (isRefused(ctx, `backups[${i}]`)) continue;
    const unit = backupUnitName(s.vm);
    const id = `backup.${s.vm}`;
    const timer = renderBackupTimer(s);
    // systemd's own parser judges the calendar before a timer with it is written (a bad one fails
    // the apply there, with nothing of this VM's schedule changed).
    if (currentOf(ctx, `${UNIT_DIR}/${unit}.timer`) !== timer)
      planCommand(ctx, {
        id: `${id}.calendar`,
        argv: ["systemd-analyze", "calendar", s.calendar],
        effect: "none",
        summary: `check the calendar of VM ${s.vm}'s backups with systemd: ${s.calendar}`,
      });
    planFile(ctx, {
      id: `${id}.service`,
      path: `${UNIT_DIR}/${unit}.service`,
      content: renderBackupService(s),
      effect: "none",
      summary: `backup service for VM ${s.vm}: incremental to ${s.to}, a full every ${s.fullEvery}, ${s.keep} chains kept`,
    });
    planFile(ctx, {
      id: `${id}.timer`,
      path: `${UNIT_DIR}/${unit}.timer`,
      content: timer,
      effect: "none",
      summary: `backup timer for VM ${s.vm}: ${s.calendar}`,
    });
    planCommand(ctx, {
      id: `${id}.enable`,
      argv: ["systemctl", "enable", "--now", `${unit}.timer`],
      undo: ["systemctl", "disable", "--now", `${unit}.timer`],
      check: ["systemctl", "is-enabled", "--quiet", `${unit}.timer`],
      effect: "none",
      summary: `enable ${unit}.timer`,
    });
  }
}

/** The VMs whose backup units are on the host (as detect listed them) but no longer in the answer. */
export function removedBackupVms(
  ctx: PlanContext,
): Map<string, { service: string | null; timer: string | null }> {
  const wanted = new Set((ctx.answer.backups ?? []).map((s) => s.vm));
  const out = new Map<string, { service: string | null; timer: string | null }>();
  for (const p of ctx.report.system.configFiles ?? []) {
    if (!p.startsWith(`${UNIT_DIR}/`)) continue;
    const m = BACKUP_UNIT_FILE.exec(p.slice(UNIT_DIR.length + 1));
    if (!m?.[1] || wanted.has(m[1])) continue;
    const unit = out.get(m[1]) ?? { service: null, timer: null };
    unit[m[2] as "service" | "timer"] = p;
    out.set(m[1], unit);
  }
  return out;
}

/**
 * Timer first (stopped and disabled: its undo enables and starts it again, after the files are
 * back, as undo runs in reverse), then the files (their inverse writes them back), then systemd
 * forgets the removed units.
 */
function planRemovedBackups(ctx: PlanContext): void {
  const removed = removedBackupVms(ctx);
  for (const [vm, files] of removed) {
    const unit = backupUnitName(vm);
    const id = `backup.${vm}.removed`;
    if (files.timer)
      planCommand(ctx, {
        id: `${id}.disable`,
        argv: ["systemctl", "disable", "--now", `${unit}.timer`],
        undo: ["systemctl", "enable", "--now", `${unit}.timer`],
        effect: "none",
        summary: `stop and disable ${unit}.timer: VM ${vm} is no longer in the answer's backups:`,
      });
    for (const [kind, path] of [
      ["timer", files.timer],
      ["service", files.service],
    ] as const) {
      if (!path) continue;
      const previous = currentOf(ctx, path);
      if (previous === null) continue; // listed by detect, gone before the plan read it
      const remove: Action = {
        kind: "remove-file",
        id: `${id}.${kind}`,
        path,
        previous,
        effect: "none",
        summary: `remove ${unit}.${kind} (VM ${vm}'s backups left the answer)`,
      };
      ctx.actions.push(remove);
    }
  }
  if (removed.size)
    planCommand(ctx, {
      id: "backup.removed.daemon-reload",
      argv: ["systemctl", "daemon-reload"],
      effect: "none",
      summary: "systemd forgets the removed backup units",
    });
}
