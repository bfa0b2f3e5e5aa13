// The VM actions in the apply engine (real qemu-img, the fake libvirt that keeps state and refuses
// wrong calls): a dry run without a libvirt connection says what it would do, a run without one
// fails clearly before touching anything, and nothing that kvmstrap did not make is replaced.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyPlan } from "../../src/apply/engine.js";
import { EventBus } from "../../src/apply/events.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import type { Action } from "../../src/plan/actions.js";
import { FakeLibvirt } from "../vm/fake-libvirt.js";
import { planOf, tempDir } from "./helpers.js";

const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const BASE = "/srv/base.qcow2";
const DIR = "/var/lib/kvmstrap/vms/web1";

const actions = (): Action[] => [
  {
    kind: "libvirt",
    op: "define-domain",
    id: "vm.web1.define",
    summary: "define",
    effect: "none",
    name: "web1",
    xml: '<domain><name>web1</name><metadata spec="h1"/></domain>',
    specHash: "h1",
    nvram: false,
    logs: [],
  },
  {
    kind: "vm-overlay",
    id: "vm.web1.overlay",
    summary: "overlay",
    effect: "none",
    path: `${DIR}/disk.qcow2`,
    image: BASE,
    cacheDir: "/var/lib/kvmstrap/images",
    sizeBytes: 2 ** 26,
  },
  {
    kind: "vm-seed",
    id: "vm.web1.seed",
    summary: "seed",
    effect: "none",
    path: `${DIR}/seed.iso`,
    userData: "#cloud-config\n",
    metaData: "instance-id: i-1\n",
    networkConfig: "{}\n",
  },
  {
    kind: "libvirt",
    op: "start-domain",
    id: "vm.web1.start",
    summary: "start",
    effect: "none",
    name: "web1",
  },
];

async function setup() {
  const root = await tempDir();
  await mkdir(path.join(root, "srv"));
  execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", path.join(root, BASE), "32M"]);
  const stateDir = await tempDir("kvmstrap-state-");
  return { root, options: { target: new RootedTargetFs(root), runner: new ExecaRunner(), stateDir } };
}

describe.skipIf(!hasQemuImg)("VM actions in the engine (skipped without qemu-img)", () => {
  it("a dry run without a libvirt connection says what it would do", async () => {
    const { options } = await setup();
    const details: string[] = [];
    const bus = new EventBus();
    bus.subscribe((e) => {
      if (e.type === "step" && e.detail) details.push(e.detail);
    });
    const r = await applyPlan(planOf(actions()), { ...options, dryRun: true, bus });
    expect(r.status).toBe("dry-run");
    expect(details).toEqual([
      "would define the libvirt domain web1",
      `would create the overlay ${DIR}/disk.qcow2 (0.06 GiB) on ${BASE}`,
      `would write the cloud-init seed ${DIR}/seed.iso`,
      "would start the domain web1",
    ]);
  });

  it("a run without a libvirt connection fails at the first VM action, having made nothing", async () => {
    const { root, options } = await setup();
    const r = await applyPlan(planOf(actions()), options);
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(/^vm\.web1\.define: this plan defines VMs and no libvirt connection was given/);
    expect(spawnSync("test", ["-e", path.join(root, DIR)]).status).not.toBe(0);
  });

  it("a disk kvmstrap did not make is never replaced: the deploy stops, the file is untouched", async () => {
    const { root, options } = await setup();
    const libvirt = new FakeLibvirt();
    await mkdir(path.join(root, DIR), { recursive: true });
    writeFileSync(path.join(root, DIR, "disk.qcow2"), "someone's data");
    const r = await applyPlan(planOf(actions()), { ...options, libvirt });
    expect(r.status).toBe("failed");
    expect(r.error).toMatch(
      /^vm\.web1\.overlay: name taken: .*disk\.qcow2 exists and is not this VM's overlay/,
    );
    expect(readFileSync(path.join(root, DIR, "disk.qcow2"), "utf8")).toBe("someone's data");
  });

  it.skipIf(process.getuid?.() !== 0)(
    "an answer file's VM is held to the deploy's space margin: a nearly full directory stops it before the overlay (root: a 64 MiB tmpfs)",
    async () => {
      const { root, options } = await setup();
      const vms = path.join(root, "var/lib/kvmstrap/vms");
      await mkdir(vms, { recursive: true });
      expect(spawnSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", vms]).status).toBe(0);
      try {
        const libvirt = new FakeLibvirt();
        const big = actions().map((a) => (a.kind === "vm-overlay" ? { ...a, sizeBytes: 2 ** 30 } : a));
        const r = await applyPlan(planOf(big), { ...options, libvirt });
        expect(r.status).toBe("failed");
        expect(r.error).toMatch(
          /^vm\.web1\.overlay: .*no space left on the device holding .*: .* free, VM web1 needs/,
        );
        expect(spawnSync("test", ["-e", path.join(root, DIR, "disk.qcow2")]).status).not.toBe(0);
      } finally {
        spawnSync("umount", [vms]);
      }
    },
  );

  it("a domain of the same name kvmstrap did not define is refused and left alone", async () => {
    const { options } = await setup();
    const libvirt = new FakeLibvirt();
    await libvirt.defineDomain("<domain><name>web1</name></domain>");
    const r = await applyPlan(planOf(actions()), { ...options, libvirt });
    expect(r.error).toMatch(
      /name taken: a domain named web1 already exists and was not deployed by kvmstrap/,
    );
    expect(libvirt.domains.get("web1")?.xml).toBe("<domain><name>web1</name></domain>");
  });

  it("applied twice: the second run finds everything in place and calls no mutating libvirt method", async () => {
    const { options } = await setup();
    const libvirt = new FakeLibvirt();
    expect((await applyPlan(planOf(actions()), { ...options, libvirt })).counts).toEqual({
      done: 4,
      skipped: 0,
      failed: 0,
    });
    const mark = libvirt.calls.length;
    const again = await applyPlan(planOf(actions()), { ...options, libvirt });
    expect(again.counts).toEqual({ done: 0, skipped: 4, failed: 0 });
    expect(
      libvirt.calls
        .slice(mark)
        .filter((c) => ["defineDomain", "start", "destroy", "undefineDomain"].includes(c)),
    ).toEqual([]);
  });
});
