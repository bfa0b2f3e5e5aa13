// Fault injection: kill -9 a real apply (a child process running the built engine) at random points,
// then re-run it (fresh or --resume) and check the tree equals an uninterrupted run's, that no
// temporary file is left, and that undo still restores the original tree. The plan deploys two VMs
// too (define, overlay by the real qemu-img, seed, record, start) through a fake libvirt whose
// domains outlive the killed child, as libvirtd's do: the re-run converges on the same domains.
// Reproduce a failure with KVMSTRAP_FAULT_SEED=<the seed printed in the assertion message>.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { beforeAll, describe, expect, it } from "vitest";
import { undoLastRun } from "../../src/apply/engine.js";
import { Journal } from "../../src/apply/journal.js";
import type { HostReport } from "../../src/detect/types.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Action } from "../../src/plan/actions.js";
import { vmActions as planVmActions } from "../../src/plan/vm-plan.js";
import { specHash, type VmSpec } from "../../src/vm/vm-spec.js";
import { FakeLibvirt } from "../vm/fake-libvirt.js";
import { planOf, populate, tempDir, tree, writeFileAction } from "./helpers.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const child = path.join(repo, "test/apply/fixtures/apply-child.mjs");
const DELAY_MS = 8;
const KILLS_WANTED = 12;
/** The fake libvirt bundled for the child (under node_modules so its imports resolve). */
const fakeModule = path.join(repo, "node_modules/.cache/kvmstrap-test/fake-libvirt.mjs");

/** dist/ must hold an engine at least as new as its sources (npm test builds first; a lone run may not). */
beforeAll(async () => {
  const sources = ["src/apply", "src/host", "src/vm", "src/plan"].flatMap((d) =>
    spawnSync("find", [path.join(repo, d), "-name", "*.ts"], { encoding: "utf8" })
      .stdout.split("\n")
      .filter(Boolean),
  );
  const newest = Math.max(...sources.map((f) => statSync(f).mtimeMs));
  const built = path.join(repo, "dist/apply/engine.js");
  if (!existsSync(built) || statSync(built).mtimeMs < newest) {
    // Others' in-progress type errors make tsc exit non-zero but it still emits; only the output counts.
    spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"], { cwd: repo, encoding: "utf8" });
  }
  expect(existsSync(built), "dist/apply/engine.js could not be built").toBe(true);
  await build({
    entryPoints: [path.join(repo, "test/vm/fake-libvirt.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    packages: "external",
    outfile: fakeModule,
    logLevel: "silent",
  });
}, 120_000);

function mulberry32(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const initialFiles: Record<string, string> = {};
for (let i = 0; i < 10; i++) initialFiles[`etc/conf.d/file-${i}.conf`] = `original ${i}\n`;
initialFiles["etc/old-0.conf"] = "old 0\n";
initialFiles["etc/old-1.conf"] = "old 1\n";
const BASE_IMAGE = "/srv/images/base.qcow2";
const VMS = ["vm-a", "vm-b"];

/** What the planner needs of the host for a VM: no KVM here (TCG), one NUMA node. */
const vmHost = {
  kvm: { probe: { verdict: "unusable", detail: "no /dev/kvm in the test" }, vhostNet: false },
  memory: { numa: [{ id: 0, cpus: "0" }] },
  pci: [],
  cpu: { onlineCpus: "0" },
} as unknown as HostReport;

const vmSpec = (name: string): VmSpec => ({
  name,
  image: BASE_IMAGE,
  vcpus: 1,
  memoryMiB: 256,
  diskGiB: 0.09375, // 96 MiB
  user: { name: "debian", sshKeys: [], sudo: true },
  nics: [{ kind: "network", network: "default" }],
});

/** The actions that deploy one VM: the planner's own (plan/vm-plan.ts), as `vm deploy` runs them. */
const vmActions = (name: string): Action[] => planVmActions(vmSpec(name), vmHost, {}, null).actions;

/** A root's tree with each qcow2 overlay described by what qemu-img reads in it (its backing file
 *  relative to the root, its size): the bytes name the root's own absolute path. */
async function vmTree(root: string): Promise<Record<string, string>> {
  const t = await tree(root);
  for (const k of Object.keys(t)) {
    if (!k.endsWith("disk.qcow2")) continue;
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "-U", "--output=json", path.join(root, k)], { encoding: "utf8" }),
    );
    t[k] = `qcow2 backing=${String(info["backing-filename"]).replace(root, "")} size=${info["virtual-size"]}`;
  }
  return t;
}

/** The fake libvirt's domains: name, state and whether the definition is the planned one. */
function domains(stateFile: string): Record<string, string> {
  if (!existsSync(stateFile)) return {};
  const state = JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, { xml: string; state: string }>;
  return Object.fromEntries(
    Object.entries(state).map(([n, d]) => [
      n,
      `${d.state}${d.xml.includes(specHash(vmSpec(n))) ? "" : " (foreign)"}`,
    ]),
  );
}

async function populateRoot(root: string) {
  await populate(root, initialFiles);
  await mkdir(path.join(root, path.dirname(BASE_IMAGE)), { recursive: true });
  execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", path.join(root, BASE_IMAGE), "64M"]);
}

function faultPlan() {
  const actions: Action[] = [];
  for (let i = 0; i < 10; i++) {
    actions.push(
      writeFileAction(
        `overwrite.${i}`,
        `/etc/conf.d/file-${i}.conf`,
        `replaced ${i}\n${"x".repeat(4000)}\n`,
        {
          previous: `original ${i}\n`,
        },
      ),
    );
  }
  for (let i = 0; i < 10; i++)
    actions.push(writeFileAction(`newdir.${i}`, `/etc/new-${i}/sub/file.conf`, `new dir ${i}\n`));
  for (let i = 0; i < 8; i++)
    actions.push(writeFileAction(`new.${i}`, `/etc/conf.d/new-${i}.conf`, `new ${i}\n`));
  for (let i = 0; i < 2; i++) {
    actions.push({
      kind: "remove-file",
      id: `remove.${i}`,
      summary: "remove",
      effect: "none",
      path: `/etc/old-${i}.conf`,
      previous: `old ${i}\n`,
    });
  }
  for (const name of VMS) actions.push(...vmActions(name));
  return planOf(actions);
}

type Outcome = { code: number | null; signal: NodeJS.Signals | null; steps: number };

function runChild(
  args: string[],
  libvirtState: string,
  delayMs: number,
  kill?: { afterSteps: number; extraMs: number },
): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, ...args], {
      env: {
        ...process.env,
        KVMSTRAP_TEST_STEP_DELAY_MS: String(delayMs),
        KVMSTRAP_TEST_FAKE_LIBVIRT: fakeModule,
        KVMSTRAP_TEST_LIBVIRT_STATE: libvirtState,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let steps = 0;
    let stderr = "";
    p.stderr.on("data", (c) => {
      stderr += c;
    });
    createInterface({ input: p.stdout }).on("line", (line) => {
      const e = JSON.parse(line);
      if (e.type === "step" && e.phase === "started" && ++steps === kill?.afterSteps) {
        setTimeout(() => p.kill("SIGKILL"), kill.extraMs);
      }
    });
    p.on("error", reject);
    p.on("close", (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`child failed (${code}): ${stderr}`));
      else resolve({ code, signal, steps });
    });
  });
}

function tempLeftovers(t: Record<string, string>): string[] {
  return Object.keys(t).filter((k) => k.includes(".kvmstrap-tmp-"));
}

async function journalState(stateDir: string): Promise<{ done: number; started: number }> {
  const run = await new Journal(stateDir).latestRun();
  const count = (s: string) => run?.actions.filter((a) => a.status === s).length ?? 0;
  return { done: count("done"), started: count("started") };
}

describe("kill -9 at random points, then re-run", () => {
  it(`ends in the uninterrupted run's tree after at least ${KILLS_WANTED} kills`, async () => {
    const seed = Number(process.env.KVMSTRAP_FAULT_SEED ?? Date.now() % 2 ** 31);
    const rnd = mulberry32(seed);
    const plan = faultPlan();
    const planFile = path.join(await tempDir("kvmstrap-plan-"), "plan.json");
    await writeFile(planFile, JSON.stringify(plan));

    const refRoot = await tempDir();
    await populateRoot(refRoot);
    const initial = await vmTree(refRoot);
    const refLibvirt = path.join(await tempDir("kvmstrap-libvirt-"), "domains.json");
    const ref = await runChild([refRoot, await tempDir("kvmstrap-state-"), planFile, "fresh"], refLibvirt, 0);
    expect(ref.code).toBe(0);
    const expected = await vmTree(refRoot);
    expect(domains(refLibvirt)).toEqual({ "vm-a": "running", "vm-b": "running" });
    expect(expected["var/lib/kvmstrap/vms/vm-a/disk.qcow2"]).toBe(
      `qcow2 backing=${BASE_IMAGE} size=${96 * 2 ** 20}`,
    );
    expect(expected["var/lib/kvmstrap/backup/etc/conf.d/file-3.conf"]).toBe("f 644 original 3\n");

    const kills: string[] = [];
    const stats = { midAction: 0, tempLeft: 0, withDomains: 0, points: new Set<string>() };
    for (let attempt = 0; kills.length < KILLS_WANTED && attempt < 40; attempt++) {
      const root = await tempDir();
      const stateDir = await tempDir("kvmstrap-state-");
      const libvirtState = path.join(await tempDir("kvmstrap-libvirt-"), "domains.json");
      await populateRoot(root);
      // Every other kill lands among the VM actions (the last ones), so each kind is cut in turn.
      const vmFirst = plan.actions.length - VMS.length * 5;
      const afterSteps =
        attempt % 2 === 0
          ? 1 + Math.floor(rnd() * plan.actions.length)
          : 1 + vmFirst + Math.floor(rnd() * (plan.actions.length - vmFirst));
      const extraMs = Math.floor(rnd() * (2 * DELAY_MS + 6));
      const killed = await runChild([root, stateDir, planFile, "fresh"], libvirtState, DELAY_MS, {
        afterSteps,
        extraMs,
      });
      if (killed.signal !== "SIGKILL") continue; // finished before the kill landed
      const afterKill = await journalState(stateDir);
      stats.midAction += afterKill.started;
      stats.tempLeft += tempLeftovers(await tree(root)).length > 0 ? 1 : 0;
      stats.points.add(`${afterKill.done}/${afterKill.started}`);
      if (Object.keys(domains(libvirtState)).length > 0) stats.withDomains++;
      const mode = kills.length % 2 === 0 ? "resume" : "fresh";
      const where = `seed ${seed}, kill #${kills.length + 1} after step ${afterSteps} + ${extraMs} ms, re-run ${mode}`;
      kills.push(where);

      const rerun = await runChild([root, stateDir, planFile, mode], libvirtState, 0);
      expect(rerun.code, where).toBe(0);
      const final = await vmTree(root);
      expect(tempLeftovers(final), where).toEqual([]);
      expect(tempLeftovers(await tree(stateDir)), where).toEqual([]);
      expect(final, where).toEqual(expected);
      expect(domains(libvirtState), where).toEqual(domains(refLibvirt));
      expect((await new Journal(stateDir).latestRun())?.phase, where).toBe("done");

      // What the interrupted run found before is kept: undo restores the original tree, and the
      // domains are gone (powered off, then undefined).
      const libvirt = new FakeLibvirt(libvirtState);
      const undone = await undoLastRun({
        target: new RootedTargetFs(root),
        runner: new ExecaRunner(),
        stateDir,
        libvirt,
      });
      expect(undone.status, where).toBe("undone");
      expect(await vmTree(root), where).toEqual(initial);
      expect(domains(libvirtState), where).toEqual({});
      expect(
        libvirt.calls.filter((c) => c === "undefineDomain"),
        where,
      ).toHaveLength(2);
    }
    expect(kills.length, `seed ${seed}: only ${kills.length} kills landed mid-run`).toBeGreaterThanOrEqual(
      KILLS_WANTED,
    );
    expect(
      stats.withDomains,
      `seed ${seed}: too few kills after a domain was defined`,
    ).toBeGreaterThanOrEqual(3);
    console.log(
      `fault injection (seed ${seed}): ${kills.length} kills at ${stats.points.size} distinct journal states ` +
        `(done/started); ${stats.midAction} inside an action, ${stats.tempLeft} left a temporary file behind, ` +
        `${stats.withDomains} left libvirt domains behind`,
    );
  }, 180_000);
});
