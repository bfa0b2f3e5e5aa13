// The answer's backups: as systemd units: per VM a oneshot service running `kvmstrap vm backup`
// (incremental, a new full chain every fullEvery backups, keep chains) and a timer on its calendar,
// written as files (their inverse restores what was there) and the timer enabled (its inverse
// disables it); a changed calendar is first checked by `systemd-analyze calendar`.
// Persistent=true: a backup missed while the host was off runs at the next boot.
import type { BackupSchedule } from "../answer/schema-backup.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";

export const UNIT_DIR = "/etc/systemd/system";
export const backupUnitName = (vm: string) => `kvmstrap-backup-${vm}`;

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
