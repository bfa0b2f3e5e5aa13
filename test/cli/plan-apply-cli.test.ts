// The unattended path end to end, as an operator runs it: plan, apply --yes, plan again (nothing
// to do), undo. Everything lands in a temporary machine root built like sysfs, for real.
import { execFile } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { projectRoot } from "../helpers/shared-hosts.js";
import { buildSriovHost } from "../helpers/sysfs-fixture.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const run = async (args: string[]) => {
  try {
    const r = await promisify(execFile)(process.execPath, [bin, ...args], {
      env: { ...process.env, NO_COLOR: "1" },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
};

const CPU =
  "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Test\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: vmx ept pdpe1gb\n\n";

function machine() {
  const fx = buildSriovHost();
  fx.file("/proc/cpuinfo", CPU)
    .file("/proc/sys/vm/nr_hugepages", "0\n")
    // The kernel shows the same counter in both places; the fixture links them the same way.
    .link("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "/proc/sys/vm/nr_hugepages")
    .file("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "0\n")
    .file("/sys/kernel/mm/ksm/run", "0\n")
    .file("/etc/modprobe.d/kvmstrap.conf", "# an older hand-written file\noptions kvm_intel nested=0\n");
  const answer = path.join(fx.root, "answer.yaml");
  writeFileSync(answer, "version: 1\nkvm:\n  nested: true\n  hugepages:\n    pages2M: 512\n  ksm: true\n");
  return { root: fx.root, answer };
}

describe("plan, apply, converge and undo into a temporary root", () => {
  it("applies the answer for real, changes nothing the second time, and undo restores the original", async () => {
    const { root, answer } = machine();
    const conf = path.join(root, "etc/modprobe.d/kvmstrap.conf");
    const original = readFileSync(conf, "utf8");

    const plan = await run(["plan", answer, "--root", root]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toContain("+options kvm_intel nested=1");
    expect(plan.stdout).toContain("-options kvm_intel nested=0");
    expect(plan.stdout).toContain("echo 512 > /proc/sys/vm/nr_hugepages");

    // The tree stands for a running machine (its sysfs is written for real): --online.
    const applied = await run(["apply", answer, "--root", root, "--online", "--yes", "--events", "-"]);
    expect(applied.code).toBe(0);
    const events = applied.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ type: "run", phase: "STARTED" });
    expect(events.at(-1)).toMatchObject({ type: "run", phase: "SUCCEEDED" });
    expect(readFileSync(conf, "utf8")).toContain("options kvm_intel nested=1");
    expect(
      readFileSync(path.join(root, "var/lib/kvmstrap/backup/etc/modprobe.d/kvmstrap.conf"), "utf8"),
    ).toBe(original);
    expect(readFileSync(path.join(root, "proc/sys/vm/nr_hugepages"), "utf8").trim()).toBe("512");
    expect(readFileSync(path.join(root, "etc/sysctl.d/60-kvmstrap-hugepages.conf"), "utf8")).toContain(
      "vm.nr_hugepages = 512",
    );

    const again = await run(["plan", answer, "--root", root]);
    expect(again.stdout).toContain("Nothing to change");

    const undone = await run(["undo", "--root", root, "--yes"]);
    expect(undone.code).toBe(0);
    expect(readFileSync(conf, "utf8")).toBe(original);
    expect(readFileSync(path.join(root, "proc/sys/vm/nr_hugepages"), "utf8").trim()).toBe("0");
    expect(existsSync(path.join(root, "etc/sysctl.d/60-kvmstrap-hugepages.conf"))).toBe(false);
  }, 60_000);

  it("--dry-run prints every operation and changes nothing", async () => {
    const { root, answer } = machine();
    const before = readFileSync(path.join(root, "etc/modprobe.d/kvmstrap.conf"), "utf8");
    const r = await run(["apply", answer, "--root", root, "--dry-run"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/would .*nr_hugepages/);
    expect(readFileSync(path.join(root, "etc/modprobe.d/kvmstrap.conf"), "utf8")).toBe(before);
    expect(existsSync(path.join(root, "var/lib/kvmstrap"))).toBe(false);
  });

  it("refuses to apply a plan with refusals, with exit 2 and the reasons", async () => {
    const { root } = machine();
    const answer = path.join(root, "bad.yaml");
    writeFileSync(answer, "version: 1\nsriov:\n  - pf: { name: enp3s0f0 }\n    numVfs: 64\n");
    const r = await run(["apply", answer, "--root", root, "--yes"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("sriov[0].numVfs");
    expect(r.stderr).toContain("supports at most 7 (sriov_totalvfs)");
  });
});
