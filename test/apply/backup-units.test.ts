// Backup schedules through the real pieces of `kvmstrap apply`: detect lists the host's kvmstrap
// backup units under a temporary root, prepare plans the answer over them, the apply engine carries
// the plan out and undo reverts it. systemctl itself acts on that root (`systemctl --root`: the
// timers.target.wants symlinks are real); only `--now` and daemon-reload, which need a running
// systemd as PID 1 (not here), are recorded instead of run.
import { existsSync, lstatSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import { prepareAnswer } from "../../src/app/prepare.js";
import { applyPlan, undoLastRun } from "../../src/apply/engine.js";
import { detectSystem } from "../../src/detect/system.js";
import type { HostReport } from "../../src/detect/types.js";
import { type CommandOptions, type CommandRunner, ExecaRunner } from "../../src/host/commands.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { labReport } from "../answer/hosts.js";
import { populate, tempDir } from "./helpers.js";

/** systemctl on the root for what works offline; the live-only parts recorded. */
class SystemctlAtRoot implements CommandRunner {
  readonly calls: string[] = [];
  private readonly inner = new ExecaRunner();
  constructor(private readonly root: string) {}
  async run(file: string, args: readonly string[], options?: CommandOptions) {
    this.calls.push([file, ...args].join(" "));
    if (file === "systemctl") {
      if (args[0] === "daemon-reload") return { exitCode: 0, stdout: "", stderr: "", timedOut: false };
      return this.inner.run(file, [`--root=${this.root}`, ...args.filter((a) => a !== "--now")], options);
    }
    return this.inner.run(file, args, options);
  }
  which(program: string) {
    return this.inner.which(program);
  }
}

const answer = (yaml: string) => parseAnswerText(`version: 1\n${yaml}`, "answer.yaml");
const BOTH = `backups:
  - { vm: web, to: /var/backups/kvmstrap/web, calendar: daily }
  - { vm: db, to: /srv/backup/db, calendar: "Mon..Fri *-*-* 02:30:00", fullEvery: 5, keep: 3 }
`;
const WEB_ONLY = `backups:
  - { vm: web, to: /var/backups/kvmstrap/web, calendar: daily }
`;
const UNITS = "etc/systemd/system";
const WANTS = `${UNITS}/timers.target.wants`;

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});

/** What `kvmstrap plan` would do on this root: detect's unit listing, the files read, the plan. */
async function planOn(root: string, yaml: string) {
  const fs = new RootedHostFs(root);
  const system = await detectSystem({ fs, warnings: [] });
  const report = { ...lab, system: { ...lab.system, configFiles: system.configFiles } };
  return (await prepareAnswer(fs, report, answer(yaml), { baseDir: root })).plan;
}

describe("backup units on a host: added, unchanged, removed, undone", () => {
  it("a VM taken out of backups: has its timer stopped and disabled and its units removed; undo brings them back", async () => {
    const root = await tempDir("kvmstrap-backup-units-");
    const stateDir = await tempDir("kvmstrap-state-");
    const runner = new SystemctlAtRoot(root);
    const target = new RootedTargetFs(root);
    const at = (p: string) => path.join(root, p);
    // The symlink itself: it points at the unit's path on the host, outside the temporary root.
    const linked = (p: string) => lstatSync(at(p), { throwIfNoEntry: false })?.isSymbolicLink() === true;

    // Added: both VMs' units written and their timers enabled.
    const added = await applyPlan(await planOn(root, BOTH), { target, runner, stateDir });
    expect(added.status).toBe("succeeded");
    const dbService = await readFile(at(`${UNITS}/kvmstrap-backup-db.service`), "utf8");
    const dbTimer = await readFile(at(`${UNITS}/kvmstrap-backup-db.timer`), "utf8");
    expect(linked(`${WANTS}/kvmstrap-backup-db.timer`)).toBe(true);
    expect(linked(`${WANTS}/kvmstrap-backup-web.timer`)).toBe(true);

    // Unchanged: only the enables are planned, and their checks skip them.
    const same = await planOn(root, BOTH);
    await expect(renderPlanText(same)).toMatchFileSnapshot("../plan/golden-backup/unchanged.txt");
    const again = await applyPlan(same, { target, runner, stateDir });
    expect(again.counts).toEqual({ done: 0, skipped: 2, failed: 0 });

    // Removed: db's timer disabled (with --now), its files removed, systemd told; web untouched.
    const removal = await planOn(root, WEB_ONLY);
    await expect(renderPlanText(removal)).toMatchFileSnapshot("../plan/golden-backup/removed.txt");
    runner.calls.length = 0;
    const removed = await applyPlan(removal, { target, runner, stateDir });
    expect(removed.status).toBe("succeeded");
    expect(runner.calls).toContain("systemctl disable --now kvmstrap-backup-db.timer");
    expect(runner.calls).toContain("systemctl daemon-reload");
    expect(existsSync(at(`${UNITS}/kvmstrap-backup-db.service`))).toBe(false);
    expect(existsSync(at(`${UNITS}/kvmstrap-backup-db.timer`))).toBe(false);
    expect(linked(`${WANTS}/kvmstrap-backup-db.timer`)).toBe(false);
    expect(linked(`${WANTS}/kvmstrap-backup-web.timer`)).toBe(true);
    expect(existsSync(at(`${UNITS}/kvmstrap-backup-web.timer`))).toBe(true);
    // Planned again, nothing of db is left to remove.
    const after = await planOn(root, WEB_ONLY);
    expect(after.actions.map((a) => a.id)).toEqual(["backup.web.enable"]);

    // Undo: the files come back as they were, and the timer is enabled and started again.
    runner.calls.length = 0;
    const undo = await undoLastRun({ target, runner, stateDir });
    expect(undo.status).toBe("undone");
    expect(await readFile(at(`${UNITS}/kvmstrap-backup-db.service`), "utf8")).toBe(dbService);
    expect(await readFile(at(`${UNITS}/kvmstrap-backup-db.timer`), "utf8")).toBe(dbTimer);
    expect(linked(`${WANTS}/kvmstrap-backup-db.timer`)).toBe(true);
    expect(runner.calls).toContain("systemctl enable --now kvmstrap-backup-db.timer");
  });

  it("units of other programs in /etc/systemd/system are not kvmstrap's to remove", async () => {
    const root = await tempDir("kvmstrap-backup-units-");
    await populate(root, {
      [`${UNITS}/kvmstrap-backup-old.timer`]: "[Timer]\nOnCalendar=daily\n",
      [`${UNITS}/kvmstrap-backup-old.service`]: "[Service]\nType=oneshot\n",
      [`${UNITS}/backup-old.timer`]: "[Timer]\n",
      [`${UNITS}/kvmstrap-resume.service`]: "[Service]\n",
      [`${UNITS}/kvmstrap-backup-Bad_Name.timer`]: "[Timer]\n",
    });
    const plan = await planOn(root, "");
    expect(plan.actions.filter((a) => a.id.startsWith("backup.")).map((a) => [a.kind, a.id])).toEqual([
      ["run-command", "backup.old.removed.disable"],
      ["remove-file", "backup.old.removed.timer"],
      ["remove-file", "backup.old.removed.service"],
      ["run-command", "backup.removed.daemon-reload"],
    ]);
  });
});
