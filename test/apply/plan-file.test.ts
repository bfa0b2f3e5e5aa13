// The plan read back from JSON (`apply --plan FILE`) is the plan's own schema: everything it carries
// is kept (the post-reboot `expect` included), a malformed plan is a one-line error naming the file
// and the field, and a plan whose files changed since planning is refused with a diff.
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyPlan } from "../../src/apply/engine.js";
import { validatePlan } from "../../src/apply/plan-file.js";
import { StalePlanError } from "../../src/apply/stale.js";
import { InputError } from "../../src/core/errors.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Plan } from "../../src/plan/actions.js";
import { planOf, populate, tempDir, tree, writeFileAction } from "./helpers.js";

const roundTrip = (plan: Plan) => validatePlan(JSON.parse(JSON.stringify(plan)), "plan.json");

describe("apply --plan FILE: parsed with the plan schema", () => {
  it("keeps expect, so the resumed run verifies the reboot", () => {
    const plan: Plan = {
      ...planOf([writeFileAction("kernel.grub", "/etc/default/grub", "x\n", { effect: "reboot" })]),
      expect: { cmdlineParams: ["intel_iommu=on", "iommu=pt"], vfio: ["0000:01:00.0"], iommuGroups: true },
    };
    const read = roundTrip(plan);
    expect(read.expect).toEqual(plan.expect);
    expect(read).toEqual(plan);
  });

  it("keeps every action kind, VM actions included, and a refusal's rule id", () => {
    const plan: Plan = {
      ...planOf([
        {
          kind: "libvirt",
          op: "define-domain",
          id: "vm.a.define",
          summary: "s",
          effect: "none",
          name: "a",
          xml: "<domain/>",
          specHash: "h",
          nvram: false,
          logs: ["/var/lib/kvmstrap/vms/a/serial.log"],
        },
        {
          kind: "vm-overlay",
          id: "vm.a.overlay",
          summary: "s",
          effect: "none",
          path: "/v/a/disk.qcow2",
          image: "debian-12",
          cacheDir: "/var/lib/kvmstrap/images",
          sizeBytes: 2 ** 30,
        },
        {
          kind: "vm-seed",
          id: "vm.a.seed",
          summary: "s",
          effect: "none",
          path: "/v/a/seed.iso",
          userData: "#cloud-config\n",
          metaData: "",
          networkConfig: "{}\n",
        },
        { kind: "libvirt", op: "start-domain", id: "vm.a.start", summary: "s", effect: "none", name: "a" },
      ]),
      refusals: [{ path: "vms[1].image", reason: "unknown image", ruleId: "vm.image" }],
    };
    expect(roundTrip(plan)).toEqual(plan);
  });

  it.each([
    [{ schema: "kvmstrap.plan/2", actions: [] }, /^p\.json: not a kvmstrap plan/],
    [{ schema: "kvmstrap.plan/1", actions: "x" }, /^p\.json: actions: /],
    [
      { schema: "kvmstrap.plan/1", actions: [{ kind: "format-disk", id: "a", summary: "", effect: "none" }] },
      /^p\.json: actions\[0\]\.kind: /,
    ],
    [
      { schema: "kvmstrap.plan/1", actions: [{ ...writeFileAction("a", "etc/x", ""), path: "etc/x" }] },
      /^p\.json: actions\[0\]\.path: must be an absolute path/,
    ],
    [
      { schema: "kvmstrap.plan/1", actions: [{ ...writeFileAction("a", "/etc/x", ""), mode: 0o17777 }] },
      /^p\.json: actions\[0\]\.mode: must be a permission number/,
    ],
    [
      {
        schema: "kvmstrap.plan/1",
        actions: [writeFileAction("a", "/x", ""), writeFileAction("a", "/y", "")],
      },
      /^p\.json: actions\[1\]\.id: duplicate id "a"/,
    ],
    [
      { schema: "kvmstrap.plan/1", actions: [], expect: { cmdlineParams: "intel_iommu=on", vfio: [] } },
      /^p\.json: expect\.cmdlineParams: /,
    ],
  ])("a malformed plan is an InputError naming the file and field (%#)", (data, message) => {
    let err: unknown;
    try {
      validatePlan(data, "p.json");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain("\n");
  });
});

describe("a stale plan", () => {
  async function setup() {
    const root = await tempDir();
    const stateDir = await tempDir("kvmstrap-state-");
    await populate(root, { "etc/hosts": "127.0.0.1 localhost\n", "etc/hostname": "old\n" });
    const plan = planOf([
      writeFileAction("host.hosts", "/etc/hosts", "127.0.0.1 localhost\n10.0.0.2 kvm-01\n", {
        previous: "127.0.0.1 localhost\n",
      }),
      writeFileAction("host.name", "/etc/hostname", "kvm-01\n", { previous: "old\n" }),
    ]);
    const options = { target: new RootedTargetFs(root), runner: new ExecaRunner(), stateDir };
    return { root, stateDir, plan, options };
  }

  it("is refused with a diff of what changed since planning, touching nothing", async () => {
    const { root, plan, options } = await setup();
    await writeFile(path.join(root, "etc/hosts"), "127.0.0.1 localhost\n192.0.2.9 added-by-hand\n");
    const before = await tree(root);
    const err = await applyPlan(plan, options).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StalePlanError);
    expect(err).toBeInstanceOf(InputError); // exit 2
    const message = (err as Error).message;
    expect(message).toMatch(/^the plan is stale: \/etc\/hosts changed since it was planned/);
    expect(message).toContain("--- /etc/hosts\twhen planned");
    expect(message).toContain("+++ /etc/hosts\tnow");
    expect(message).toContain("+192.0.2.9 added-by-hand");
    expect(message).not.toContain("/etc/hostname");
    expect(await tree(root)).toEqual(before);
    // A dry run refuses too: it would show operations computed from the old text.
    await expect(applyPlan(plan, { ...options, dryRun: true })).rejects.toThrow(StalePlanError);
  });

  it("a file created since planning (the plan saw none) is stale too", async () => {
    const { root, options } = await setup();
    const plan = planOf([writeFileAction("kvm.conf", "/etc/modules-load.d/kvm.conf", "kvm\n")]);
    await populate(root, { "etc/modules-load.d/kvm.conf": "kvm_amd\n" });
    await expect(applyPlan(plan, options)).rejects.toThrow(/--- \/dev\/null\twhen planned/);
  });

  it("a file already holding what the plan writes counts as converged, not stale", async () => {
    const { root, plan, options } = await setup();
    await writeFile(path.join(root, "etc/hostname"), "kvm-01\n");
    const r = await applyPlan(plan, options);
    expect(r.status).toBe("succeeded");
    expect(r.counts).toEqual({ done: 1, skipped: 1, failed: 0 });
  });
});
