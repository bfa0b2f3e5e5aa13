// The answer's backup schedule: per VM, when (a systemd OnCalendar expression), where, how long a
// chain of incrementals runs before a new full backup, and how many chains to keep. Kept apart from
// schema.ts, which places it under `backups:`. plan/backup-plan.ts renders each entry as a systemd
// service and timer running `kvmstrap vm backup`; the calendar is checked with systemd-analyze there
// (the unit test) and by systemd itself when the timer loads; this only says what may be written.
import { z } from "zod";
import { VM_NAME } from "../core/grammar.js";

// A calendar goes into a unit file line: one line of the characters systemd's calendar grammar uses.
const calendar = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9 *:,./~+-]+$/, "a systemd calendar expression such as daily or Mon..Fri 02:30");

export const backupSchedule = z
  .strictObject({
    vm: z
      .string()
      .regex(VM_NAME.pattern, VM_NAME.describe)
      .refine(VM_NAME.test, VM_NAME.describe)
      .describe("the VM to back up (a VM on this host's libvirtd)"),
    to: z
      .string()
      .regex(/^\/[^\s\n\\%]*$/, "an absolute directory path without spaces, '%' or '\\'")
      .refine((p) => !p.split("/").includes(".."), "no '..' in the path")
      .describe("the VM's backup directory (chains go in chain-<time>/ inside it)"),
    calendar: calendar.describe("when, as systemd OnCalendar (e.g. daily, *-*-* 02:30:00)"),
    fullEvery: z
      .number()
      .int()
      .min(1)
      .default(7)
      .describe("backups per chain: a full backup, then incrementals until the chain has this many"),
    keep: z.number().int().min(1).default(2).describe("chains kept; older chains are removed after a backup"),
  })
  .describe("a scheduled backup of one VM (systemd timer)");

export const backups = z
  .array(backupSchedule)
  .describe("scheduled VM backups: one systemd service and timer per VM running kvmstrap vm backup");

export type BackupSchedule = z.infer<typeof backupSchedule>;
