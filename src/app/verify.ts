// Verify: does this host hold what was promised? The promises come from an answer file (loaded,
// detected and planned through the prepare path, so its errors are located like everywhere else) or,
// without one, from the plan of the last apply run in the journal. Each check says what was expected,
// what was found and where to look; the result is written atomically to
// <root>/var/lib/kvmstrap/verify.json, and posted as the node lifecycle event "verified" or "failed"
// to the answer's webhook. On a tree (--root) the live-only checks (the KVM probe, libvirt pools, the
// test VM) are "unknown", never a pass or a fail.
import { randomBytes } from "node:crypto";
import path from "node:path";
import type { Answer } from "../answer/schema.js";
import { now } from "../apply/events.js";
import { Journal, type JournalRun } from "../apply/journal.js";
import { writeFileAtomic } from "../core/atomic-write.js";
import { InputError } from "../core/errors.js";
import type { HostReport } from "../detect/types.js";
import type { HostFs } from "../host/fs.js";
import type { Plan } from "../plan/actions.js";
import type { Libvirt } from "../vm/libvirt.js";
import { libvirtAt, SYSTEM_LIBVIRT, stateDirOf } from "./adapters.js";
import { answerWebhook } from "./apply.js";
import { detectMachine, type ProbeMode } from "./inspect.js";
import { withMachine } from "./machine.js";
import type { NodeLifecycleEvent } from "./node-protocol.js";
import { prepareFile } from "./prepare.js";
import { hostChecks, MODULE_SIGNS, type ModuleState, NOT_ON_TREE, vendorModuleOf } from "./verify-checks.js";
import { hardeningChecks } from "./verify-hardening.js";
import { readHardeningFacts } from "./verify-hardening-read.js";
import { poolChecks, testVmCheck } from "./verify-libvirt.js";
import { type Promises, promisesOf } from "./verify-promises.js";
import {
  summarize,
  VERIFY_SCHEMA_ID,
  type VerifyCheck,
  type VerifyResult,
  verifyLine,
  verifyResultSchema,
} from "./verify-result.js";

export { type VerifyResult, verifyLine, verifyResultSchema } from "./verify-result.js";

export interface VerifyOptions {
  /** The answer file; null: the last apply run's plan (its journal). */
  answerFile?: string | null;
  /** The machine root ("/": this running host). */
  root?: string;
  stateDir?: string;
  /** Where verify.json goes (default <state dir>/verify.json). */
  out?: string;
  /** Boot the test VM (live host only). Default true. */
  vm?: boolean;
  /** libvirt connection for pools and the test VM (default qemu:///system). */
  libvirtUri?: string;
  probe?: ProbeMode;
  /** libvirt's configuration directory for the hardening checks (default /etc/libvirt). */
  libvirtEtc?: string;
  /** Replaces the libvirt port (tests). */
  libvirt?: Libvirt;
  /** Where webhook delivery problems go (stderr by default). */
  log?: (line: string) => void;
  /** One line before each slow step (the test VM). */
  progress?: (line: string) => void;
}

export interface VerifyRun {
  result: VerifyResult;
  /** Where the result was written. */
  file: string;
  answer: Answer | null;
}

export const verifyFileOf = (root: string, stateDir?: string): string =>
  path.join(stateDirOf(root, stateDir), "verify.json");

interface Source {
  report: HostReport;
  plan: Plan;
  answer: Answer | null;
  latest: JournalRun | null;
  source: VerifyResult["source"];
  /** Checks the source itself adds (an answer's refused items). */
  extra: VerifyCheck[];
}

async function fromAnswer(file: string, root: string, stateDir: string, probe: ProbeMode): Promise<Source> {
  const options = { probe };
  const prepared = await prepareFile(file, { root }, options);
  const latest = await new Journal(stateDir).latestRun();
  // The plan that was applied, when the journal holds this answer's: it was made on the host before
  // the changes (the plan made now sees the changed host, and the rules may read it differently).
  const applied = latest && latest.plan.answerDigest === prepared.plan.answerDigest ? latest : null;
  // Planned now, what the rules refuse is a promise nobody will keep: said, as a warning (the checks
  // below still look at the host; a refusal caused by the changes themselves must not fail it).
  const refusals = applied ? [] : prepared.plan.refusals;
  const refused: VerifyCheck[] = refusals.length
    ? [
        {
          id: "answer.refusals",
          status: "warn",
          expected: "every item of the answer can be planned on this host",
          found: `${refusals.length} item(s) refused: ${refusals.map((r) => `${r.path}: ${r.reason}`).join("; ")}`,
          where: [`kvmstrap answer validate ${file}`, `kvmstrap plan ${file}`],
        },
      ]
    : [];
  return {
    report: prepared.report,
    plan: applied?.plan ?? prepared.plan,
    answer: prepared.answer,
    latest,
    source: { kind: "answer", file: path.resolve(file), ...(applied ? { runId: applied.runId } : {}) },
    extra: refused,
  };
}

async function fromJournal(root: string, stateDir: string, probe: ProbeMode): Promise<Source> {
  const latest = await new Journal(stateDir).latestRun();
  if (!latest) {
    throw new InputError(
      `nothing to verify: no answer file given and no apply run under ${path.join(stateDir, "runs")}`,
    );
  }
  const report = await withMachine({ root }, (m) => detectMachine(m, { mode: probe }));
  return {
    report,
    plan: latest.plan,
    answer: null,
    latest,
    source: { kind: "journal", runId: latest.runId, planDigest: latest.planDigest },
    extra: [],
  };
}

/** The journal's word on the apply: finished, or where it stopped. */
function applyRunCheck(s: Source, stateDir: string): VerifyCheck {
  const run = s.latest;
  const base = { id: "apply.run", expected: "the last apply run finished (done)" };
  if (!run) {
    return {
      ...base,
      status: "warn",
      found: `no apply run recorded under ${path.join(stateDir, "runs")}`,
      where: ["kvmstrap apply ANSWER"],
    };
  }
  const where = [
    path.join(stateDir, "runs", `${run.runId}.json`),
    "kvmstrap apply --resume",
    "journalctl -b -u kvmstrap-firstboot",
  ];
  const other = s.answer && s.source.runId === undefined ? " (it applied another answer)" : "";
  const detail = run.error ? `: ${run.error}` : "";
  if (run.phase === "done")
    return { ...base, status: other ? "warn" : "pass", found: `run ${run.runId} done${other}`, where };
  if (run.phase === "undone")
    return { ...base, status: "warn", found: `run ${run.runId} was undone${other}`, where };
  const waits =
    run.phase === "awaiting-reboot"
      ? ` (waits for a reboot: ${(run.rebootIds ?? []).join(", ")})`
      : run.phase === "awaiting-confirm"
        ? ` (waits for "kvmstrap confirm" until ${run.deadline})`
        : "";
  return {
    ...base,
    status: "fail",
    found: `run ${run.runId} is ${run.phase}${waits}${detail}${other}`,
    where,
  };
}

/** /sys/module/<m>, the running kernel's modules.builtin, or the module's device or driver; unknown
 *  when the tree has no /sys/module. */
async function moduleStates(fs: HostFs, report: HostReport, p: Promises): Promise<Map<string, ModuleState>> {
  const names = [...p.modules];
  const vendor = vendorModuleOf(report.cpu.vendor);
  if (vendor) names.push(vendor);
  const sysModule = await fs.exists("/sys/module");
  const builtinText = report.kernel
    ? await fs.readText(`/lib/modules/${report.kernel}/modules.builtin`)
    : null;
  const builtin = new Set(
    (builtinText ?? "").split("\n").map((l) => path.posix.basename(l.trim(), ".ko").replace(/-/g, "_")),
  );
  const out = new Map<string, ModuleState>();
  for (const m of names) {
    const sign = MODULE_SIGNS[m];
    if (await fs.exists(`/sys/module/${m}`)) out.set(m, "loaded");
    else if (builtin.has(m)) out.set(m, "builtin");
    else if (sign && (await fs.exists(sign))) out.set(m, "present");
    else out.set(m, sysModule ? "absent" : "unknown");
  }
  return out;
}

async function libvirtChecks(
  s: Source,
  p: Promises,
  o: VerifyOptions,
  live: boolean,
  stateDir: string,
): Promise<VerifyCheck[]> {
  const uri = o.libvirtUri ?? SYSTEM_LIBVIRT;
  if (!live) {
    const tree = (id: string, expected: string): VerifyCheck => ({
      id,
      status: "unknown",
      expected,
      found: NOT_ON_TREE,
      where: [],
    });
    return [
      ...p.pools.map((name) => tree(`pool.${name}`, `storage pool ${name} active`)),
      ...(o.vm === false
        ? []
        : [tree("vm.boot", "a test VM boots and prints its marker on its serial console")]),
    ];
  }
  const libvirt = o.libvirt ?? libvirtAt(uri);
  const out = await poolChecks(libvirt, p.pools);
  if (o.vm !== false) {
    const kvm = s.report.kvm.probe.verdict === "usable";
    o.progress?.(`booting the test VM (${kvm ? "KVM" : "TCG"}) through ${uri}`);
    out.push(
      await testVmCheck({
        libvirt,
        dir: path.join(stateDir, `verify-vm-${process.pid}`),
        kvm,
        nonce: randomBytes(6).toString("hex"),
      }),
    );
  }
  return out;
}

/** The lifecycle event for the answer's webhook: verified, or failed with what failed. */
export function lifecycleEventOf(r: VerifyResult): NodeLifecycleEvent {
  const failed = r.checks.filter((c) => c.status === "fail").map((c) => `${c.id}: ${c.found}`);
  const detail = [verifyLine(r), ...failed].join("; ").slice(0, 2000);
  return { type: "node", phase: r.status === "pass" ? "verified" : "failed", time: now(), detail };
}

/** Posts one lifecycle event to the answer's webhook (secret headers redacted in any log line). */
export async function postLifecycle(
  answer: Answer | null,
  event: NodeLifecycleEvent,
  log?: (l: string) => void,
): Promise<void> {
  const sink = answerWebhook(answer?.report, log ? { log } : {});
  // The webhook sink posts any event as its JSON body; the intake (kvmstrap serve) takes apply and
  // lifecycle events alike (node-protocol.ts), so the lifecycle event travels the same way.
  await sink?.(event as unknown as Parameters<NonNullable<typeof sink>>[0]);
}

export async function runVerify(o: VerifyOptions = {}): Promise<VerifyRun> {
  const t0 = Date.now();
  const root = path.resolve(o.root ?? "/");
  const stateDir = stateDirOf(root, o.stateDir);
  const live = root === "/";
  const probe: ProbeMode = live ? (o.probe ?? "auto") : "never";
  const s = o.answerFile
    ? await fromAnswer(o.answerFile, root, stateDir, probe)
    : await fromJournal(root, stateDir, probe);
  const p = promisesOf(s.plan, s.answer);
  const modules = await withMachine({ root }, (m) => moduleStates(m.fs, s.report, p));
  const checks = [
    applyRunCheck(s, stateDir),
    ...s.extra,
    ...hostChecks(p, { report: s.report, live, modules }),
    ...(await libvirtChecks(s, p, o, live, stateDir)),
    // After the test VM: it is gone by now, and /proc is read afresh.
    ...(await withMachine({ root }, async (m) =>
      hardeningChecks(
        await readHardeningFacts({
          fs: m.fs,
          live,
          libvirt: live ? (o.libvirt ?? libvirtAt(o.libvirtUri ?? SYSTEM_LIBVIRT)) : null,
          ...(o.libvirtEtc ? { etc: o.libvirtEtc } : {}),
          allowList: p.expect.vfio,
        }),
      ),
    )),
  ];
  const result = verifyResultSchema.parse({
    schema: VERIFY_SCHEMA_ID,
    ...summarize(checks),
    time: now(),
    durationMs: Date.now() - t0,
    hostname: s.report.hostname,
    kernel: s.report.kernel,
    root,
    live,
    source: s.source,
    checks,
  });
  const file = o.out ? path.resolve(o.out) : verifyFileOf(root, o.stateDir);
  await writeFileAtomic(file, `${JSON.stringify(result, null, 1)}\n`, 0o644);
  await postLifecycle(s.answer, lifecycleEventOf(result), o.log);
  return { result, file, answer: s.answer };
}
