// `kvmstrap plan FILE` shows the answer's VMs, as the shipped CLI runs it (bin/kvmstrap.js through
// the use-case layer): the VM actions after the host's, a relative template found beside the answer
// file, and the same actions in --json that `apply --plan` reads back (its dry run says what it would
// do to libvirt).
import { execFile } from "node:child_process";
import { cpSync, writeFileSync } from "node:fs";
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

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

function machine() {
  const fx = buildSriovHost();
  fx.file("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: vmx ept\n\n");
  // A template beside the answer file, named relatively: it resolves against the file, not the cwd.
  const templates = path.join(fx.root, "answers/tpl");
  cpSync(path.join(projectRoot, "templates/cloud-init"), templates, { recursive: true });
  writeFileSync(
    path.join(templates, "user-data.yaml"),
    "timezone: Europe/Vienna # from the answer's own template\n",
  );
  const answer = path.join(fx.root, "answers/answer.yaml");
  writeFileSync(
    answer,
    [
      "version: 1",
      "kvm: { nested: true }",
      "vms:",
      `  - { name: web1, image: debian-12, vcpus: 2, memoryMiB: 1024, diskGiB: 10, template: tpl, user: { name: debian, sshKeys: ["${KEY}"] } }`,
      "",
    ].join("\n"),
  );
  return { root: fx.root, answer };
}

describe("kvmstrap plan with vms:", () => {
  it("shows the VM's actions after the host's, with the answer's own template", async () => {
    const { root, answer } = machine();
    const plan = await run(["plan", answer, "--root", root]);
    expect(plan.code, plan.stderr).toBe(0);
    const out = plan.stdout;
    expect(out).toContain("VM web1: define the domain");
    expect(out).toContain(
      "$ qemu-img create -f qcow2 -b debian-12 /var/lib/kvmstrap/vms/web1/disk.qcow2 10737418240",
    );
    expect(out).toContain("+timezone: Europe/Vienna");
    expect(out).toContain("virsh start web1");
    expect(out.indexOf("vm.web1.define")).toBeGreaterThan(out.indexOf("nested"));

    const json = await run(["plan", answer, "--root", root, "--json"]);
    const planFile = path.join(root, "plan.json");
    writeFileSync(planFile, json.stdout);
    const ids = (JSON.parse(json.stdout).plan ?? JSON.parse(json.stdout)).actions.map(
      (a: { id: string }) => a.id,
    );
    expect(ids.filter((id: string) => id.startsWith("vm."))).toEqual([
      "vm.web1.define",
      "vm.web1.overlay",
      "vm.web1.seed",
      "vm.web1.record",
      "vm.web1.start",
    ]);
    const dry = await run(["apply", "--plan", planFile, "--root", root, "--online", "--dry-run", "--yes"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stderr).toContain("would define the libvirt domain web1");
    expect(dry.stderr).toContain("would start the domain web1");
  });
});
