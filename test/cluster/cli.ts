// What every cluster test does with the hosts of test/cluster/hosts.ts: virsh on a host's own
// libvirtd, a guest's serial log, the host report and `kvmstrap apply --plan` from the built CLI run
// inside a host's namespaces, and the built `kvmstrap vm migrate` from host A to host B with its JSON
// result.
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { mkdir, readdir, readFile, rmdir, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { execa } from "execa";
import { type Action, PLAN_SCHEMA_ID, type Plan } from "../../src/plan/actions.js";
import { projectRoot } from "../helpers/shared-hosts.js";
import type { Cluster, ClusterHost } from "./hosts.js";

export const BIN = path.join(projectRoot, "bin/kvmstrap.js");

/** A directory holding `kvmstrap` (a link to the built CLI), put first on PATH inside a host. */
export const PATH_DIR = path.join(projectRoot, ".cache/cluster-path");
mkdirSync(PATH_DIR, { recursive: true });
if (!existsSync(path.join(PATH_DIR, "kvmstrap"))) symlinkSync(BIN, path.join(PATH_DIR, "kvmstrap"));

export const virsh = (h: ClusterHost, ...args: string[]) =>
  execa("virsh", ["-c", h.localUri, ...args], { reject: false, env: { LC_ALL: "C" } });

export const serialOf = (h: ClusterHost, vm: string) =>
  readFile(path.join(h.daemon.dirs.log, `qemu/${vm}-serial.log`), "utf8").catch(() => "");

/** `kvmstrap detect --json` run inside the host's namespaces, saved to `file`. */
export async function reportOf(h: ClusterHost, file: string): Promise<string> {
  const r = await execa(
    "nsenter",
    ["-t", String(h.daemon.pid), "-n", "-m", "-u", "node", BIN, "detect", "--json"],
    {
      reject: false,
    },
  );
  await writeFile(file, r.stdout);
  return file;
}

/**
 * A program inside a host's network, mount and UTS namespaces (its /run/libvirt is its daemon's). The
 * built CLI is on its PATH as `kvmstrap`, as on an installed host: plans run `kvmstrap ...` steps.
 */
export const inHost = (h: ClusterHost, args: string[]) =>
  execa("nsenter", ["-t", String(h.daemon.pid), "-n", "-m", "-u", ...args], {
    reject: false,
    env: { LC_ALL: "C", PATH: `${PATH_DIR}:${process.env.PATH ?? "/usr/bin:/bin"}` },
  });

/** Planned actions as a plan file holds them (`kvmstrap apply --plan` reads it; no answer digested). */
export const planOf = (actions: Action[]): Plan => ({
  schema: PLAN_SCHEMA_ID,
  answerDigest: "",
  actions,
  refusals: [],
  needsReboot: false,
});

export type Applied = {
  planText: string;
  output: string;
  stateDir: string;
  /** The plan file, apply's stdout and stderr, and every file of its state dir (journal, event log). */
  texts: string[];
};

let madeEtcKvmstrap = false;

/**
 * The plan written to a file in `dir` and applied by the built `kvmstrap apply --plan FILE --yes
 * --events -` inside the host's namespaces, its journal in `dir`/HOST-`journal`. Plans write under
 * /etc/kvmstrap: in the host's mount namespace a directory of the test's is mounted there, so the
 * machine's /etc is never written (only an empty /etc/kvmstrap made as the mount point if missing:
 * removeEtcKvmstrapMountPoint after the hosts stopped). Throws with apply's output unless it exits 0.
 */
export async function applyPlanOn(
  h: ClusterHost,
  plan: Plan,
  dir: string,
  journal = "state",
): Promise<Applied> {
  const own = path.join(dir, `${h.name}-etc-kvmstrap`);
  const stateDir = path.join(dir, `${h.name}-${journal}`);
  if (!(await stat(own).catch(() => null))) {
    await mkdir(own, { recursive: true });
    await mkdir("/etc/kvmstrap").then(
      () => {
        madeEtcKvmstrap = true;
      },
      () => {},
    );
    await h.daemon.nsExec("mount", ["--bind", own, "/etc/kvmstrap"]);
  }
  await mkdir(stateDir, { recursive: true });
  const planText = JSON.stringify(plan, null, 2);
  const file = path.join(dir, `${h.name}-${journal}-plan.json`);
  await writeFile(file, planText);
  const r = await inHost(h, [
    "node",
    BIN,
    "apply",
    "--plan",
    file,
    "--yes",
    "--state-dir",
    stateDir,
    "--events",
    "-",
  ]);
  const output = `${r.stdout}\n${r.stderr}`;
  const texts = [planText, output];
  for (const f of await readdir(stateDir, { recursive: true }))
    texts.push(await readFile(path.join(stateDir, String(f)), "utf8").catch(() => ""));
  if (r.exitCode !== 0) throw new Error(`${h.name}: kvmstrap apply exited ${r.exitCode}:\n${output}`);
  return { planText, output, stateDir, texts };
}

/** Removes the empty /etc/kvmstrap applyPlanOn made as a mount point, if it made it. */
export async function removeEtcKvmstrapMountPoint(): Promise<void> {
  if (madeEtcKvmstrap) await rmdir("/etc/kvmstrap").catch(() => {});
  madeEtcKvmstrap = false;
}

/** The built `kvmstrap vm migrate VM` from A to B over TLS, with B's report and any further options. */
export const migrateCli = (c: Cluster, vm: string, report: string, ...more: string[]) =>
  execa(
    "node",
    [
      BIN,
      "vm",
      "migrate",
      vm,
      "--to",
      c.b.address,
      "--to-connect",
      c.b.tlsUri,
      "--connect",
      c.a.localUri,
      "--target-report",
      report,
      ...more,
    ],
    { reject: false, env: { LC_ALL: "C" } },
  );

/** A migration on shared storage (no --copy-storage), JSON lines on stdout. */
export const migrateNoCopy = (c: Cluster, vm: string, report: string) =>
  migrateCli(c, vm, report, "--max-downtime", "300", "--json");

export type MigrateResultLine = {
  event: "result";
  outcome: string;
  target: string;
  wallMs: number;
  downtimeMs: number | null;
  copiedDisks: string[];
  [key: string]: unknown;
};

/** The result line of `vm migrate --json` (an error naming the output when there is none). */
export function migrateResult(stdout: string): MigrateResultLine {
  const found = stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { event?: string })
    .find((e) => e.event === "result");
  if (!found) throw new Error(`vm migrate --json printed no result line:\n${stdout}`);
  return found as MigrateResultLine;
}

/** What a plain TCP connection to ADDRESS:PORT meets: "connected", "timeout" (3 s) or the error code. */
export const tcpProbe = (address: string, port: number) =>
  new Promise<string>((resolve) => {
    const s = net.connect({ host: address, port });
    s.setTimeout(3000, () => {
      s.destroy();
      resolve("timeout");
    });
    s.on("connect", () => {
      s.destroy();
      resolve("connected");
    });
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
