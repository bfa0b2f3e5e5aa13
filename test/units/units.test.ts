// The first-boot units in units/: checked by systemd's own parser (systemd-analyze verify, on a root
// holding them where the installer puts them; PID 1 here is not systemd, so they are checked, not
// run: the image tier runs them), and the wrapper they run driven through its branches with the real
// kvmstrap CLI on synthetic machine trees (--root): the journal complete, a plan that still waits for
// a reboot, verify failing, and the failure handler's summary.
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  buildConfiguredHost,
  configuredPlan,
  HOST,
  journalRun,
  stateDirOfRoot,
} from "../app/verify-fixture.js";
import { projectRoot } from "../helpers/shared-hosts.js";

const UNITS = path.join(projectRoot, "units");
const hasAnalyze = spawnSync("systemd-analyze", ["--version"]).status === 0;
const built = existsSync(path.join(projectRoot, "dist/cli/main.js"));
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

function tmp(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `${prefix}${process.pid}-`));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A root laid out as units/README.md tells the installer to lay it out. */
function installedRoot(): string {
  const root = tmp("kvmstrap-units-");
  mkdirSync(path.join(root, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  mkdirSync(path.join(root, "usr/local/lib/kvmstrap"), { recursive: true });
  mkdirSync(path.join(root, "usr/lib/systemd"), { recursive: true });
  // systemd's own units (multi-user.target, sysinit.target...) that ours are ordered against.
  cpSync("/usr/lib/systemd/system", path.join(root, "usr/lib/systemd/system"), {
    recursive: true,
    verbatimSymlinks: true,
  });
  for (const u of ["kvmstrap-firstboot.service", "kvmstrap-firstboot-failed.service"])
    cpSync(path.join(UNITS, u), path.join(root, "etc/systemd/system", u));
  cpSync(path.join(UNITS, "kvmstrap-firstboot"), path.join(root, "usr/local/lib/kvmstrap/firstboot"));
  chmodSync(path.join(root, "usr/local/lib/kvmstrap/firstboot"), 0o755);
  return root;
}

function analyze(root: string): { status: number | null; output: string } {
  const r = spawnSync(
    "systemd-analyze",
    [
      "verify",
      "--man=no",
      `--root=${root}`,
      "/etc/systemd/system/kvmstrap-firstboot.service",
      "/etc/systemd/system/kvmstrap-firstboot-failed.service",
    ],
    { encoding: "utf8" },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

describe.skipIf(!hasAnalyze)("the units, by systemd-analyze verify", { timeout: 60_000 }, () => {
  it("parse clean: no warning, exit 0", () => {
    expect(analyze(installedRoot())).toEqual({ status: 0, output: "" });
  });

  it("a missing wrapper is caught (the check can fail)", () => {
    const root = installedRoot();
    rmSync(path.join(root, "usr/local/lib/kvmstrap/firstboot"));
    const r = analyze(root);
    expect(r.status).not.toBe(0);
    expect(r.output).toContain("/usr/local/lib/kvmstrap/firstboot is not executable");
  });

  it("a mistyped setting is reported", () => {
    const root = installedRoot();
    const unit = path.join(root, "etc/systemd/system/kvmstrap-firstboot.service");
    writeFileSync(
      unit,
      readFileSync(unit, "utf8").replace("TimeoutStartSec=25min", "TimeoutStartSec=25 minutes please"),
    );
    expect(analyze(root).output).toMatch(/Failed to parse TimeoutStartSec=/);
  });
});
if (!hasAnalyze) it.skip("systemd-analyze is not installed (apt-get install systemd)", () => {});

it.skipIf(!hasAnalyze)("enabling makes the one symlink units/README.md tells the installer to make", () => {
  const root = installedRoot();
  execFileSync("systemctl", [`--root=${root}`, "enable", "kvmstrap-firstboot.service"], { stdio: "ignore" });
  const link = path.join(root, "etc/systemd/system/multi-user.target.wants/kvmstrap-firstboot.service");
  expect(readlinkSync(link)).toBe("/etc/systemd/system/kvmstrap-firstboot.service");
  const readme = readFileSync(path.join(UNITS, "README.md"), "utf8");
  expect(readme).toContain(
    "/etc/systemd/system/multi-user.target.wants/kvmstrap-firstboot.service -> /etc/systemd/system/kvmstrap-firstboot.service",
  );
});

describe("what the first-boot unit promises", () => {
  const unit = readFileSync(path.join(UNITS, "kvmstrap-firstboot.service"), "utf8");
  const keys = (name: string) => [...unit.matchAll(new RegExp(`^${name}=(.*)$`, "gm"))].map((m) => m[1]);
  it("runs once: a done marker stops it, written only after verify passes", () => {
    expect(keys("ConditionPathExists")).toEqual(["!/var/lib/kvmstrap/firstboot.done"]);
  });
  it("has a timeout, a retry limit and a failure handler", () => {
    expect(keys("TimeoutStartSec")).toEqual(["25min"]);
    expect(keys("StartLimitBurst")).toEqual(["3"]);
    expect(keys("Restart")).toEqual(["on-failure"]);
    expect(keys("RestartPreventExitStatus")).toEqual(["3"]);
    expect(keys("OnFailure")).toEqual(["kvmstrap-firstboot-failed.service"]);
    expect(existsSync(path.join(UNITS, "kvmstrap-firstboot-failed.service"))).toBe(true);
  });
});

describe.skipIf(!built)("the wrapper, with the real kvmstrap on a machine tree", { timeout: 90_000 }, () => {
  function setup() {
    const fx = buildConfiguredHost();
    cleanup.push(() => fx.cleanup());
    const bin = tmp("kvmstrap-bin-");
    const kvmstrap = path.join(bin, "kvmstrap");
    // What /usr/local/bin/kvmstrap is on the appliance: node running the built CLI.
    writeFileSync(kvmstrap, `#!/bin/sh\nexec "${process.execPath}" "${projectRoot}/bin/kvmstrap.js" "$@"\n`, {
      mode: 0o755,
    });
    const rebooted = path.join(bin, "rebooted");
    const run = (...args: string[]) =>
      spawnSync(path.join(UNITS, "kvmstrap-firstboot"), args, {
        encoding: "utf8",
        env: {
          ...process.env,
          KVMSTRAP: kvmstrap,
          KVMSTRAP_ROOT: fx.root,
          KVMSTRAP_ANSWER: path.join(fx.root, "etc/kvmstrap/answer.yaml"),
          KVMSTRAP_REBOOT: `touch ${rebooted}`,
          KVMSTRAP_MAX_REBOOTS: "1",
        },
        timeout: 60_000,
      });
    return { fx, run, rebooted, done: path.join(stateDirOfRoot(fx.root), "firstboot.done") };
  }

  it("journal complete, verify passes: exit 0 and the done marker", async () => {
    const { fx, run, done } = setup();
    await journalRun(stateDirOfRoot(fx.root), configuredPlan());
    const r = run();
    expect(r.stdout).toContain("KVMSTRAP-VERIFY: PASS");
    expect(r.stdout).toContain("the apply journal is complete");
    expect(r.status).toBe(0);
    expect(existsSync(done)).toBe(true);
    expect(readFileSync(path.join(fx.root, "etc/issue.d/kvmstrap-firstboot.issue"), "utf8")).toBe(
      "kvmstrap first boot: KVMSTRAP-VERIFY: PASS (details: /var/lib/kvmstrap/verify.json)\n\n",
    );
  });

  it("verify fails: exit 3 (no retry), no done marker, and the failure handler says why", async () => {
    const { fx, run, done } = setup();
    await journalRun(stateDirOfRoot(fx.root), configuredPlan());
    fx.file(`${fx.netPath(HOST.bridge)}/carrier`, "0\n");
    const r = run();
    expect(r.stdout).toContain("KVMSTRAP-VERIFY: FAIL (1 failed: bridge.br0)");
    expect(r.status).toBe(3);
    expect(existsSync(done)).toBe(false);
    const f = run("--failed", "kvmstrap-firstboot.service");
    expect(f.status).toBe(0);
    expect(f.stdout).toMatch(
      /KVMSTRAP-FIRSTBOOT: FAILED \(kvmstrap-firstboot\.service\): apply run .* is done; last verify: KVMSTRAP-VERIFY: FAIL/,
    );
    expect(readFileSync(path.join(fx.root, "etc/issue.d/kvmstrap-firstboot.issue"), "utf8")).toMatch(
      /^kvmstrap first boot: KVMSTRAP-FIRSTBOOT: FAILED \(kvmstrap-firstboot\.service\)/,
    );
  });

  it("a plan that still waits for a reboot: the wrapper reboots, once at most", async () => {
    const { fx, run, rebooted, done } = setup();
    // Resumed on a tree (offline), the sysfs write is deferred: the run waits for a (first) boot.
    await journalRun(stateDirOfRoot(fx.root), configuredPlan(), "awaiting-reboot");
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("rebooting");
    expect(existsSync(rebooted)).toBe(true);
    expect(existsSync(done)).toBe(false);
    const again = run();
    expect(again.stdout).toContain("giving up");
    expect(again.status).toBe(3);
  });

  it("no journal and no answer: nothing to do, marked done", () => {
    const { run, done } = setup();
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("nothing to resume or verify");
    expect(existsSync(done)).toBe(true);
  });
});
if (!built) it.skip("the wrapper tests need the built CLI: npm run build", () => {});

it("the wrapper is valid bash", () => {
  execFileSync("bash", ["-n", path.join(UNITS, "kvmstrap-firstboot")]);
});
