// One VM schema: the answer file's vms: entry is the only definition of a VM. The seed accepts
// exactly what the answer schema accepts (a `$7$` scrypt hash validated, then failed at deploy; a
// bare key the other way round), `vm deploy` flags are parsed as such an entry, and `kvmstrap plan`
// shows an answer's VMs as the actions apply carries out.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import { answerSchema } from "../../src/answer/schema.js";
import { vmCommand } from "../../src/cli/vm-command.js";
import type { HostReport } from "../../src/detect/types.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan, planFiles } from "../../src/plan/index.js";
import { renderSeed } from "../../src/vm/cloud-init.js";
import { labReport } from "../answer/hosts.js";
import { captureCli } from "../helpers/capture-cli.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

let lab: HostReport;
let dir: string;
beforeAll(async () => {
  lab = await labReport();
  dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-vmschema-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entry = (user: Record<string, unknown>) => ({
  name: "web1",
  image: "debian-12",
  vcpus: 1,
  memoryMiB: 512,
  diskGiB: 4,
  user: { name: "debian", sshKeys: [KEY], ...user },
});
const answerAccepts = (user: Record<string, unknown>) =>
  answerSchema.safeParse({ version: 1, vms: [entry(user)] }).success;
const seedAccepts = (user: Record<string, unknown>) => {
  try {
    renderSeed({ hostname: "web1", user: { name: "debian", sshKeys: [KEY], sudo: false, ...user } });
    return true;
  } catch {
    return false;
  }
};

describe("one VM schema", () => {
  it.each([
    [
      "a $7$ scrypt hash",
      { passwordHash: "$7$CU..../....2cEP2r2bxB.4AgKkOdQD1$CEB9ZvHXWHCmlPL16zFkP1aGu6K9rdMpXNnaGnJ/Uh9" },
      true,
    ],
    [
      "a $y$ yescrypt hash",
      { passwordHash: "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7" },
      true,
    ],
    ["a $6$ hash", { passwordHash: "$6$salt$hashhashhash" }, true],
    ["a plain password as a hash", { passwordHash: "hunter2" }, false],
    ["a bare key type", { sshKeys: ["ssh-ed25519"] }, false],
    ["a key whose blob names another type", { sshKeys: [KEY.replace("ssh-ed25519", "ssh-rsa")] }, false],
    ["a key with a second line", { sshKeys: [`${KEY}\nssh-ed25519 AAAA evil`] }, false],
    ["a real key", { sshKeys: [KEY] }, true],
  ])("%s: the seed accepts it exactly when the answer schema does", (_, user, ok) => {
    expect(answerAccepts(user)).toBe(ok);
    expect(seedAccepts(user)).toBe(ok);
  });

  it("vm deploy flags are parsed as a vms: entry: a bare key is exit 2 naming --ssh-key, nothing made", async () => {
    const keyFile = path.join(dir, "bare.pub");
    writeFileSync(keyFile, "ssh-ed25519\n");
    const libvirt = new FakeLibvirt();
    const r = await captureCli(() =>
      vmCommand(
        ["deploy", "--name", "web1", "--image", "/srv/base.qcow2", "--ssh-key", keyFile, "--dir", dir],
        { libvirt, report: lab },
      ),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^kvmstrap: --ssh-key: an OpenSSH public key/);
    expect(libvirt.domains.size).toBe(0);
    const name = await captureCli(() =>
      vmCommand(["deploy", "--name", "Web_1", "--image", "/srv/base.qcow2", "--dir", dir], {
        libvirt,
        report: lab,
      }),
    );
    expect(name.code).toBe(2);
    expect(name.stderr).toMatch(/^kvmstrap: --name: a VM name/);
  });
});

describe("kvmstrap plan shows the answer's VMs", () => {
  const answer = () =>
    parseAnswerText(
      [
        "version: 1",
        "host: { hostname: lab-01 }",
        "vms:",
        `  - { name: web1, image: debian-12, vcpus: 2, memoryMiB: 1024, diskGiB: 10, user: { name: debian, sshKeys: ["${KEY}"] } }`,
      ].join("\n"),
      "a.yaml",
    );

  it("as define, overlay, seed, record and start, after every host action", () => {
    const plan = buildPlan(lab, answer());
    const ids = plan.actions.map((a) => a.id);
    const vm = ids.filter((id) => id.startsWith("vm.web1."));
    expect(vm).toEqual([
      "vm.web1.define",
      "vm.web1.overlay",
      "vm.web1.seed",
      "vm.web1.record",
      "vm.web1.start",
    ]);
    expect(ids.slice(-vm.length)).toEqual(vm);
    const text = renderPlanText(plan);
    expect(text).toContain("VM web1: define the domain (qemu, 2 vCPUs, 1024 MiB)");
    expect(text).toContain(
      "$ qemu-img create -f qcow2 -b debian-12 /var/lib/kvmstrap/vms/web1/disk.qcow2 10737418240   (image from /var/lib/kvmstrap/images)",
    );
    expect(text).toContain("+++ user-data");
    expect(text).toContain("virsh start web1");
    // The record is a file the plan writes: it is read before planning, like every managed file.
    expect(planFiles(lab, answer())).toContain("/var/lib/kvmstrap/vms/web1/vm.json");
  });

  it("a VM whose rules do not resolve is refused, not planned", () => {
    const a = answer();
    a.vms[0] = { ...(a.vms[0] as (typeof a.vms)[number]), nics: [{ bridge: "nosuchbr0" }] };
    const plan = buildPlan(lab, a);
    expect(plan.actions.some((x) => x.id.startsWith("vm.web1."))).toBe(false);
    expect(plan.refusals.map((r) => r.path)).toContain("vms[0].nics[0].bridge");
  });
});
