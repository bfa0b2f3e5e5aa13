// Install the hypervisor onto a disk: the one use case behind `kvmstrap install`, the TUI's Install
// screen and the appliance's unattended install. The answer is validated with the one rule set
// (its install.* rules decide which disk may be erased), the install plan is built from it, and
// the engine carries it out and journals it like any other plan. This file also answers the
// plan's own first step, the guard that re-checks the disk just before it is erased.
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { readFile, stat, statfs } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseDocument } from "yaml";
import type { AnswerIssue } from "../answer/load.js";
import { diskLabel, matchDisks } from "../answer/match.js";
import { type Finding, findingsForDraft } from "../answer/rules/index.js";
import { bootMediumOf, installExclusion, isRemovable, sameDisk } from "../answer/rules/install.js";
import type { Answer } from "../answer/schema.js";
import type { ApplyResult } from "../apply/engine.js";
import { type ApplyEvent, type EventBus, fileLogSink } from "../apply/events.js";
import { diskContents } from "../checks/resources.js";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import type { DiskReport, HostReport } from "../detect/types.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import type { Plan } from "../plan/actions.js";
import {
  buildInstallPlan,
  type FirstBootUnits,
  INSTALL_TARGET,
  INSTALL_WORK,
  type InstallDisk,
  NO_UNITS,
} from "../plan/install-plan.js";
import type { Adapters } from "./adapters.js";
import { runApply } from "./apply.js";
import { detectMachine, type ProbeMode } from "./inspect.js";
import {
  alreadyInstalledLine,
  installedFrom,
  type ReinstallDecision,
  reinstallDecision,
} from "./install-marker.js";
import { type MachineSource, withMachine } from "./machine.js";
import { locateIssue, readAnswer } from "./prepare.js";

export { INSTALL_TARGET } from "../plan/install-plan.js";

/** The answer the installed host keeps, written here (0600) before the run copies it over. */
export const INSTALL_ANSWER_COPY = `${INSTALL_WORK}/answer.yaml`;
/** The install's own journal on the live system (the host's journal is on the target). */
export const INSTALL_STATE_DIR = "/var/lib/kvmstrap/install";
/** The install's event log, under <state dir>/log/ (copied to the target's /var/log/kvmstrap/install/log/). */
export const INSTALL_EVENTS_FILE = "install-events.jsonl";

export interface InstallPrepared {
  file: string;
  answer: Answer;
  report: HostReport;
  /** Every finding of the rule set, located in the file; errors refuse the install. */
  issues: (AnswerIssue & { level: Finding["level"]; ruleId: string; remediation: string | null })[];
  plan: Plan;
  /** The disk the answer names (null when the rules found none, or several). */
  disk: DiskReport | null;
  /** The path the plan erases (its by-id link, or the override): where the marker is looked for. */
  device: string | null;
}

export interface InstallOptions {
  /** Identifiers of the new filesystems (random unless given: tests fix them). */
  ids?: { rootUuid: string; espVolumeId: string };
  probe?: ProbeMode;
  /** Overrides the disk (the real-parts test's loop device). */
  disk?: InstallDisk;
  /** The kvmstrap program the plan's guard and configure steps run (default: kvmstrap on PATH). */
  kvmstrap?: string;
  /** The source is an image file (stat'ed on this host by prepareInstall). */
  sourceIsImage?: boolean;
  /** console= values of the live kernel command line (read by prepareInstall). */
  consoles?: string[];
  /** The first-boot units (default: those kvmstrap ships in units/). */
  units?: FirstBootUnits;
  /** The install's state directory (journal, events; default INSTALL_STATE_DIR): the plan copies it
   *  to the target's /var/log/kvmstrap, so runInstall must be given the same one. */
  stateDir?: string;
  /** The install time the marker records (default: now) and kvmstrap's version (default: this one). */
  installedAt?: string;
  version?: string;
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** kvmstrap's own install directory (/opt/kvmstrap on the appliance): dist/app/ or src/app/ is two up. */
const APP_DIR = path.resolve(here, "../..");

/**
 * The first-boot units kvmstrap ships (units/ beside dist/, see units/README.md): every unit file is
 * copied, those with an [Install] section are enabled, and the wrapper they run goes with them.
 */
export function shippedUnits(dir = path.join(APP_DIR, "units")): FirstBootUnits {
  if (!existsSync(dir)) return NO_UNITS;
  const files = readdirSync(dir).sort();
  const copy = files.filter((f) => /\.(service|timer|path)$/.test(f));
  return {
    copy,
    enable: copy.filter((f) => /^\[Install\]/m.test(readFileSync(path.join(dir, f), "utf8"))),
    wrapper: files.includes("kvmstrap-firstboot") ? "kvmstrap-firstboot" : null,
  };
}

export const newInstallIds = () => ({
  rootUuid: randomUUID(),
  espVolumeId: randomBytes(4).toString("hex"),
});

/** Detect the machine, read the answer, run the rule set and build the install plan. */
export async function prepareInstall(
  file: string,
  source: MachineSource,
  o: InstallOptions = {},
): Promise<InstallPrepared> {
  const src = await readAnswer(file);
  const { report, cmdline } = await withMachine(source, async (m) => ({
    report: await detectMachine(m, { mode: o.probe ?? "never" }),
    cmdline: (await m.fs.readText("/proc/cmdline")) ?? "",
  }));
  const consoles = o.consoles ?? [...cmdline.matchAll(/(?:^|\s)console=(\S+)/g)].map((m) => m[1] as string);
  const from = src.answer.install?.source;
  const sourceIsImage =
    o.sourceIsImage ??
    (from
      ? await stat(from).then(
          (s) => s.isFile(),
          () => undefined,
        )
      : undefined);
  return prepareInstallFor(src.file, src, report, {
    ...o,
    consoles,
    ...(sourceIsImage !== undefined ? { sourceIsImage } : {}),
  });
}

/** The same, for an answer and a report already in hand (the TUI, tests on snapshots). */
export function prepareInstallFor(
  file: string,
  src: { answer: Answer; map?: Parameters<typeof locateIssue>[0]["map"] } | { answer: Answer },
  report: HostReport,
  o: InstallOptions = {},
): InstallPrepared {
  const { answer } = src;
  const plan = buildInstallPlan(report, answer, {
    ids: o.ids ?? newInstallIds(),
    answerFile: INSTALL_ANSWER_COPY,
    units: o.units ?? shippedUnits(),
    ...(o.kvmstrap ? { kvmstrap: o.kvmstrap } : {}),
    ...(o.disk ? { disk: o.disk } : {}),
    ...(o.sourceIsImage !== undefined ? { sourceIsImage: o.sourceIsImage } : {}),
    consoles: o.consoles ?? [],
    logs: o.stateDir ?? INSTALL_STATE_DIR,
    installedAt: o.installedAt ?? new Date().toISOString(),
    ...(o.version ? { version: o.version } : {}),
  });
  const findings = findingsForDraft(answer, report);
  const issues = findings.map((f) => {
    const located =
      "map" in src && src.map
        ? locateIssue({ file, answer, map: src.map }, f)
        : { file, line: null, column: null, path: f.path, message: f.message };
    return { ...located, level: f.level, ruleId: f.ruleId, remediation: f.remediation };
  });
  const match = answer.install ? matchDisks(answer.install.disk, report) : null;
  const disk = match && !match.error ? (match.chosen[0] ?? null) : null;
  return { file, answer, report, issues, plan, disk, device: o.disk?.device ?? disk?.byId[0] ?? null };
}

export interface InstalledCheck {
  decision: ReinstallDecision;
  /** The disk looked at, and what it holds: the marker's line, or why there is no marker. */
  device: string | null;
  detail: string;
}

/**
 * Before the install erases anything: does the disk already hold the install of this answer (the
 * appliance booted again after its own install)? "already-installed" only for the same answer's
 * marker; anything else is "install", and the rule set and the guard decide as ever whether the
 * disk may be erased.
 */
export async function checkInstalled(p: InstallPrepared, runner?: CommandRunner): Promise<InstalledCheck> {
  if (!p.device)
    return { decision: "install", device: null, detail: "no single disk named: nothing to read" };
  const found = await installedFrom(p.device, runner);
  if (!found.marker) return { decision: "install", device: p.device, detail: found.why };
  const decision = reinstallDecision(p.plan.answerDigest, found.marker);
  return {
    decision,
    device: p.device,
    detail:
      decision === "already-installed"
        ? alreadyInstalledLine(p.device, found.marker)
        : `${p.device} holds the install of another answer (sha256 ${found.marker.answerSha256.slice(0, 12)}, ` +
          `installed ${found.marker.installedAt}): installing this one`,
  };
}

/** What refuses this install, one line each with file:line and the remediation. */
export function installBlockers(p: InstallPrepared): string[] {
  const lines = p.issues
    .filter((i) => i.level === "error")
    .map((i) => {
      const at = i.line ? `${i.file}:${i.line}: ` : "";
      return `${at}${i.path}: ${i.message}${i.remediation ? `\n  fix: ${i.remediation}` : ""}`;
    });
  for (const r of p.plan.refusals)
    if (!p.issues.some((i) => i.level === "error" && i.path === r.path && i.message === r.reason))
      lines.push(`${r.path}: ${r.reason}`);
  return lines;
}

// ---- candidates (the TUI's list, `install --list`) ----------------------------------------------

export interface DiskRow {
  disk: DiskReport;
  label: string;
  /** What the rules say about installing onto it, named as the TUI names it, without a wipe. */
  findings: Finding[];
  /** Never a target: the boot medium, not a disk, in use. */
  excluded: string | null;
  /** Holds data: selectable only with an explicit wipe. */
  holdsData: string | null;
  removable: boolean;
  bootMedium: boolean;
}

/** How the TUI and `--list` name a disk in an answer: by-id first, else serial, else WWN. */
export function diskRuleFor(d: DiskReport): { byId?: string; serial?: string; wwn?: string } | null {
  const id = d.byId[0]?.replace(/^\/dev\/disk\/by-id\//, "");
  if (id) return { byId: id };
  if (d.serial) return { serial: d.serial };
  if (d.wwn) return { wwn: d.wwn };
  return null;
}

/**
 * Every disk of the host as an install candidate: usable disks first, then USB and removable disks,
 * then disks holding data, then the excluded ones (the boot medium, devices that are not disks).
 */
export function installCandidates(report: HostReport): DiskRow[] {
  const rows = report.disks
    // Stacked and virtual devices (dm, md, loop, zram) are no candidates at all; sr0 stays, marked.
    .filter((d) => !d.virtual && !/^(loop|ram|zram|dm-|md|nbd)/.test(d.name))
    .map((d): DiskRow => {
      const rule = diskRuleFor(d);
      const findings = rule
        ? findingsForDraft({ version: 1, install: { disk: rule } }, report).filter((f) =>
            f.path.startsWith("install"),
          )
        : [];
      const ex = installExclusion(report, d);
      return {
        disk: d,
        label: diskLabel(d),
        findings,
        excluded: ex?.why ?? (rule ? null : "no by-id link, serial or WWN to name it by"),
        holdsData: diskContents(d),
        removable: isRemovable(d),
        bootMedium: bootMediumOf(report, d) !== null || d.roles.includes("boot-medium"),
      };
    });
  const rank = (r: DiskRow) => (r.excluded ? 3 : r.holdsData ? 2 : r.removable ? 1 : 0);
  return rows.sort(
    (a, b) => rank(a) - rank(b) || a.disk.name.localeCompare(b.disk.name, "en", { numeric: true }),
  );
}

// ---- the guard: the plan's first step ------------------------------------------------------------

export interface DiskExpectation {
  serial?: string | undefined;
  wwn?: string | undefined;
  sizeBytes?: number | undefined;
  /** It was blank when planned (no wipe asked): anything on it now refuses. */
  blank?: boolean;
}

/**
 * Re-checks, on this host now, the disk a plan is about to erase: the device path still leads to a
 * disk with the same serial, WWN and size, which is not the boot medium, not in use, and (when it
 * was planned blank) still blank. Returns the problems; empty means go.
 */
export async function checkInstallDisk(
  device: string,
  expect: DiskExpectation,
  source: MachineSource = {},
): Promise<string[]> {
  const found = await withMachine(source, async (m) => {
    // Follow the by-id link inside the machine root (one hop: udev's links point at the node).
    const target = (await m.fs.readLink(device)) ?? ((await m.fs.exists(device)) ? device : null);
    if (!target) return null;
    return { name: path.posix.basename(target), report: await detectMachine(m, { mode: "never" }) };
  });
  if (!found) return [`${device} does not exist now: the disk changed since planning`];
  const { name, report } = found;
  const d = report.disks.find((x) => x.name === name);
  if (!d) return [`${device} leads to ${name}, which is not a whole disk`];
  const problems: string[] = [];
  const differs = (what: string, want: string | number | undefined, now: string | number | null) => {
    if (want !== undefined && String(want).trim() !== String(now ?? "").trim())
      problems.push(
        `${what} is ${now ?? "unknown"} now, ${want} when planned: the disk changed since planning`,
      );
  };
  differs("its serial", expect.serial, d.serial);
  differs("its WWN", expect.wwn, d.wwn);
  differs("its size", expect.sizeBytes, d.sizeBytes);
  const ex = installExclusion(report, d);
  if (ex) problems.push(`refusing to erase ${d.name}: ${ex.why}`);
  const contents = diskContents(d);
  if (expect.blank && contents) problems.push(`${d.name} ${contents} now, but it was blank when planned`);
  // The boot medium again, by identity, whatever name it has now.
  for (const m of report.bootMedium?.disks ?? [])
    if (sameDisk(m, d) && !problems.some((p) => p.includes("boot medium")))
      problems.push(`refusing to erase ${d.name}: it is the boot medium (${m.reason})`);
  return problems;
}

// ---- the run --------------------------------------------------------------------------------------

/** The answer the installed host keeps: the same file without its install section, comments kept. */
export async function writeInstalledAnswer(file: string, dest = INSTALL_ANSWER_COPY): Promise<void> {
  const doc = parseDocument(await readFile(file, "utf8"));
  doc.delete("install");
  await writeFileAtomic(dest, String(doc), 0o600);
}

export interface InstallRunOptions {
  bus: EventBus;
  dryRun?: boolean;
  /** Progress lines for long steps (the copy): bytes written to the target so far. */
  onProgress?: (line: string) => void;
  stateDir?: string;
  adapters?: Partial<Adapters>;
}

/** Carries out an install plan through the engine; the live system's "/" is the root it runs on. */
export async function runInstall(p: InstallPrepared, o: InstallRunOptions): Promise<ApplyResult> {
  if (!p.plan.actions.length || p.plan.refusals.length)
    throw new InputError(`the install is refused:\n${installBlockers(p).join("\n")}`);
  if (!o.dryRun) {
    await writeInstalledAnswer(p.file);
    await releaseStaleTarget();
  }
  const stop = o.onProgress ? watchCopy(o.bus, o.onProgress) : () => {};
  // The install's events (redacted) beside its journal: the plan's logs step copies both to the target.
  const unlog = o.dryRun
    ? () => {}
    : o.bus.subscribe(fileLogSink(path.join(o.stateDir ?? INSTALL_STATE_DIR, "log"), INSTALL_EVENTS_FILE));
  try {
    return await runApply(p.plan, {
      root: "/",
      stateDir: o.stateDir ?? INSTALL_STATE_DIR,
      bus: o.bus,
      dryRun: Boolean(o.dryRun),
      answer: p.answer,
      adapters: o.adapters,
    });
  } finally {
    stop();
    unlog();
  }
}

/** A previous run killed midway leaves the target mounted: unmount what is ours, nothing else. */
async function releaseStaleTarget(): Promise<void> {
  const runner = new ExecaRunner();
  const r = await runner.run("mountpoint", ["-q", INSTALL_TARGET]);
  if (r.exitCode === 0) await runner.run("umount", ["-R", INSTALL_TARGET]);
}

/** While the copy step runs, a line every few seconds with what the target holds so far. */
function watchCopy(bus: EventBus, say: (line: string) => void, everyMs = 5000): () => void {
  let timer: NodeJS.Timeout | undefined;
  let base = 0;
  const used = async () => {
    const s = await statfs(INSTALL_TARGET);
    return (s.blocks - s.bfree) * s.bsize;
  };
  const unsubscribe = bus.subscribe((e: ApplyEvent) => {
    if (e.type !== "step" || e.id !== "install.copy") return;
    if (e.phase === "started" && !e.dryRun) {
      const t0 = Date.now();
      void used().then((b) => {
        base = b;
      });
      timer = setInterval(() => {
        void used()
          .then((b) => {
            const mib = (b - base) / 1024 ** 2;
            const s = (Date.now() - t0) / 1000;
            say(`  copy: ${mib.toFixed(0)} MiB written in ${s.toFixed(0)} s (${(mib / s).toFixed(1)} MiB/s)`);
          })
          .catch(() => {});
      }, everyMs);
      timer.unref();
    } else if (e.phase !== "progress" && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  });
  return () => {
    if (timer) clearInterval(timer);
    unsubscribe();
  };
}
