// The answer's backups: as a plan: one golden file per case (test/plan/golden-backup/, reviewed):
// the text `kvmstrap plan` prints and the units it writes. Each calendar is held to systemd's own
// parser (systemd-analyze calendar), and a bad one is refused by the schema with its key.
import { execa } from "execa";
import { beforeAll, describe, expect, it } from "vitest";
import { AnswerError, parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { renderBackupService, renderBackupTimer } from "../../src/plan/backup-plan.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan } from "../../src/plan/index.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});
const answer = (yaml: string) => parseAnswerText(`version: 1\n${yaml}`, "answer.yaml");

const TWO = `backups:
  - { vm: web, to: /var/backups/kvmstrap/web, calendar: daily }
  - { vm: db, to: /srv/backup/db, calendar: "Mon..Fri *-*-* 02:30:00", fullEvery: 5, keep: 3 }
`;

describe("backup schedules in the plan", () => {
  it("two VMs: a service and a timer each, and the timer enabled with its inverse", async () => {
    const p = buildPlan(lab, answer(TWO));
    expect(p.refusals).toEqual([]);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-backup/two-vms.txt");
    const a = answer(TWO).backups ?? [];
    await expect(renderBackupService(a[1] as never)).toMatchFileSnapshot("./golden-backup/db.service");
    await expect(renderBackupTimer(a[1] as never)).toMatchFileSnapshot("./golden-backup/db.timer");
    const enable = p.actions.find((x) => x.id === "backup.db.enable");
    expect(enable?.kind === "run-command" && [enable.argv, enable.undo]).toEqual([
      ["systemctl", "enable", "--now", "kvmstrap-backup-db.timer"],
      ["systemctl", "disable", "--now", "kvmstrap-backup-db.timer"],
    ]);
  });

  it("planned again over the files it wrote: only the (checked) enable is left", () => {
    const a = answer(TWO);
    const first = buildPlan(lab, a);
    const current = new Map(
      first.actions.flatMap((x) => (x.kind === "write-file" ? [[x.path, x.content] as const] : [])),
    );
    const again = buildPlan(lab, a, current);
    expect(again.actions.filter((x) => x.id.startsWith("backup.")).map((x) => x.id)).toEqual([
      "backup.web.enable",
      "backup.db.enable",
    ]);
  });

  it("a changed calendar rewrites the timer, with the old one to restore on undo", () => {
    const before = buildPlan(lab, answer(TWO));
    const timer = before.actions.find((x) => x.id === "backup.web.timer");
    const current = new Map(timer?.kind === "write-file" ? [[timer.path, timer.content]] : []);
    const after = buildPlan(lab, answer(TWO.replace("calendar: daily", "calendar: weekly")), current);
    const rewritten = after.actions.find((x) => x.id === "backup.web.timer");
    expect(rewritten?.kind === "write-file" && rewritten.previous).toBe(
      timer?.kind === "write-file" ? timer.content : "",
    );
    expect(rewritten?.kind === "write-file" && rewritten.content).toContain("OnCalendar=weekly");
    // systemd judges the new calendar before the timer is written.
    const ids = after.actions.map((x) => x.id);
    expect(ids.indexOf("backup.web.calendar")).toBeLessThan(ids.indexOf("backup.web.timer"));
    const check = after.actions.find((x) => x.id === "backup.web.calendar");
    expect(check?.kind === "run-command" && check.argv).toEqual(["systemd-analyze", "calendar", "weekly"]);
  });

  it("every calendar the schema lets through here is one systemd parses", async () => {
    for (const c of ["daily", "weekly", "Mon..Fri *-*-* 02:30:00", "*-*-* 00/6:00", "Sat,Sun 03:00"]) {
      const r = await execa("systemd-analyze", ["calendar", c], { reject: false });
      expect(r.exitCode, `${c}: ${r.stderr}`).toBe(0);
      expect(
        buildPlan(lab, answer(`backups:\n  - { vm: web, to: /b, calendar: "${c}" }\n`)).refusals,
      ).toEqual([]);
    }
  });

  it("a calendar that could break the unit file, or a relative path, is refused naming the key", () => {
    const bad = (yaml: string) => {
      try {
        answer(yaml);
      } catch (e) {
        return e instanceof AnswerError ? e.message : String(e);
      }
      return "accepted";
    };
    expect(bad('backups:\n  - { vm: web, to: /b, calendar: "daily\\nExecStart=/bin/sh" }\n')).toMatch(
      /backups\[0\]\.calendar|backups\.0\.calendar/,
    );
    expect(bad("backups:\n  - { vm: web, to: var/b, calendar: daily }\n")).toMatch(
      /backups\[0\]\.to|backups\.0\.to/,
    );
    expect(bad("backups:\n  - { vm: Web_1, to: /b, calendar: daily }\n")).toMatch(
      /backups\[0\]\.vm|backups\.0\.vm/,
    );
  });
});
