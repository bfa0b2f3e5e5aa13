// What a deploy checks before it creates anything (src/vm/preflight.ts), through the shipped path
// deployVm, with a fake Libvirt and the real qemu-img: space with a margin (a real, nearly full tmpfs
// when this process may mount one), vhost-net only where /dev/vhost-net exists, free hugepages,
// and CPUs allocated across pinned VMs.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { HostReport } from "../../src/detect/types.js";
import { type DeployDeps, DeployError, deployVm, type VmSpec } from "../../src/vm/deploy.js";
import { deployMany } from "../../src/vm/manage.js";
import { parseCpuset, pinnedLoad, placeVm } from "../../src/vm/placement.js";
import { preflightVm, spaceNeeded } from "../../src/vm/preflight.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const GiB = 2 ** 30;
const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const isRoot = process.getuid?.() === 0;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

type HostOver = { vhostNet?: boolean | null; hugeFree?: number; nodeHugeFree?: number[]; cpus?: string[] };
/** A host report with only what deploy and preflight read; one NUMA node per cpus entry. */
const host = (o: HostOver = {}): HostReport => {
  const cpus = o.cpus ?? ["0-7"];
  return {
    kvm: { vhostNet: o.vhostNet ?? null, probe: { verdict: "unusable", detail: "not probed in tests" } },
    memory: {
      hugepageSizeKiB: 2048,
      hugepages: { "2048kB": { total: 512, free: o.hugeFree ?? 0 } },
      numa: cpus.map((c, id) => ({
        id,
        cpus: c,
        hugepages: { "2048kB": { total: 256, free: o.nodeHugeFree?.[id] ?? 0 } },
      })),
    },
    pci: [],
    cpu: { onlineCpus: cpus.join(",") },
  } as unknown as HostReport;
};

let root: string;
let base: string;
let lv: FakeLibvirt;
let vmDir: string;
let n = 0;
const spec = (over: Partial<VmSpec> = {}): VmSpec => ({
  name: "web1",
  image: base,
  vcpus: 1,
  memoryMiB: 512,
  diskGiB: 1,
  user: { name: "debian", sshKeys: [KEY], sudo: true },
  nics: [{ kind: "network", network: "default" }],
  ...over,
});
const deps = (report: HostReport, over: Partial<DeployDeps> = {}): DeployDeps => ({
  libvirt: lv,
  report,
  dir: vmDir,
  ...over,
});
const failure = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e, "the deploy should have failed").toBeInstanceOf(DeployError);
  return e as DeployError;
};
const pins = (xml: string) =>
  [...xml.matchAll(/<vcpupin vcpu="\d+" cpuset="(\d+)"\/>/g)].map((m) => Number(m[1]));

describe("the space margin", () => {
  it("is 2 GiB or 10 % of the disk, never more than the disk can grow to, plus 16 MiB", () => {
    expect(spaceNeeded(1 * GiB)).toBe(GiB + 16 * 2 ** 20);
    expect(spaceNeeded(20 * GiB)).toBe(2 * GiB + 16 * 2 ** 20);
    expect(spaceNeeded(100 * GiB)).toBe(10 * GiB + 16 * 2 ** 20);
  });
});

describe("CPU allocation across VMs", () => {
  it("reads libvirt cpusets", () => {
    expect(parseCpuset("0-3,^2,8")).toEqual([0, 1, 3, 8]);
    expect(parseCpuset("5")).toEqual([5]);
    expect(parseCpuset("x")).toBeNull();
    const xml = '<cputune><vcpupin vcpu="0" cpuset="1"/><vcpupin vcpu="1" cpuset="1-2"/></cputune>';
    expect([...pinnedLoad([xml])].sort()).toEqual([
      [1, 2],
      [2, 1],
    ]);
  });

  it("puts each vCPU on the least used CPU of the node, so two VMs do not share CPU 0", () => {
    const report = host();
    const a = placeVm(report, [], { vcpus: 2 });
    expect(a.cpus).toEqual([0, 1]);
    const b = placeVm(report, [], { vcpus: 2, load: new Map([...a.cpus.map((c) => [c, 1] as const)]) });
    expect(b.cpus).toEqual([2, 3]);
    const full = new Map(Array.from({ length: 8 }, (_, c) => [c, c === 5 ? 1 : 2] as const));
    const c = placeVm(report, [], { vcpus: 2, load: full });
    expect(c.cpus).toEqual([5, 0]);
    expect(c.reason).toMatch(/shared with other pinned domains: 5,0/);
  });
});

describe.skipIf(!hasQemuImg)(
  "deploy preflight (fake libvirt, real qemu-img; skipped without qemu-img)",
  () => {
    beforeAll(() => {
      root = mkdtempSync(path.join(tmpdir(), "kvmstrap-preflight-"));
      base = path.join(root, "base.qcow2");
      execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));
    beforeEach(() => {
      lv = new FakeLibvirt();
      lv.networks.set("default", { name: "default", active: true, autostart: true, persistent: true });
      vmDir = path.join(root, `vms-${++n}`);
      mkdirSync(vmDir);
    });

    it.skipIf(!isRoot)(
      "refuses a deploy into a nearly full directory (a real 64 MiB tmpfs: needs root to mount) before creating anything",
      async () => {
        const small = path.join(root, `small-${n}`);
        mkdirSync(small);
        execFileSync("mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", small]);
        try {
          const e = await failure(deployVm(spec(), deps(host(), { dir: small })));
          expect(e.code).toBe("no-space");
          expect(e.message).toMatch(
            new RegExp(
              `^no space left on the device holding ${small}: 64\\.0 MiB free, VM web1 needs 1\\.02 GiB before it starts`,
            ),
          );
          expect(e.remediation).toMatch(/smaller --disk/);
          expect(readdirSync(small)).toEqual([]);
          expect(lv.calls).not.toContain("defineDomain");
        } finally {
          execFileSync("umount", [small]);
        }
      },
    );

    it("refuses by the free space it is told, and warns when the disk could outgrow it", async () => {
      const tight = { report: host(), libvirt: lv, vmDir };
      const e = await failure(preflightVm(spec({ diskGiB: 20 }), { ...tight, freeBytes: async () => GiB }));
      expect(e.message).toMatch(/1\.00 GiB free, VM web1 needs 2\.02 GiB/);
      const ok = await preflightVm(spec({ diskGiB: 20 }), { ...tight, freeBytes: async () => 5 * GiB });
      expect(ok.warnings.join()).toMatch(/5\.00 GiB free, less than the 20 GiB the disk can grow to/);
    });

    it("asks for vhost-net only where /dev/vhost-net exists", async () => {
      const without = await deployVm(spec({ vcpus: 2 }), deps(host({ vhostNet: false })));
      const xml = lv.domains.get("web1")?.xml ?? "";
      expect(xml).toMatch(/<interface type="network">/);
      expect(xml).not.toMatch(/name="vhost"/);
      expect(without.warnings.join()).toMatch(
        /no \/dev\/vhost-net on this host: the NICs use qemu's virtio backend/,
      );
      await deployVm(spec({ name: "web2", vcpus: 2 }), deps(host({ vhostNet: true })));
      expect(lv.domains.get("web2")?.xml).toMatch(/<driver name="vhost" queues="2"\/>/);
    });

    it("refuses a hugepage-backed VM without enough free pages (host-wide, or on its pinned node)", async () => {
      const e = await failure(deployVm(spec({ hugepages: true }), deps(host({ hugeFree: 10 }))));
      expect(e.code).toBe("host-lacks");
      expect(e.message).toBe("VM web1: needs 256 free 2048 KiB hugepages for 512 MiB, 10 free on this host");
      expect(readdirSync(vmDir)).toEqual([]);
      expect(lv.domains.size).toBe(0);
      // Enough host-wide, but the VM's memory is bound to node 0, which has too few.
      const pinned = await failure(
        deployVm(spec({ hugepages: true, pin: true }), deps(host({ hugeFree: 400, nodeHugeFree: [100] }))),
      );
      expect(pinned.message).toMatch(/100 free on NUMA node 0$/);
      const r = await deployVm(spec({ hugepages: true }), deps(host({ hugeFree: 300 })));
      expect(r.steps.map((s) => s.id)).toContain("preflight");
      expect(lv.domains.get("web1")?.xml).toMatch(/<hugepages\/>/);
    });

    it("--pin allocates CPUs across VMs: after an existing pinned domain, and between concurrent deploys", async () => {
      const report = host();
      lv.domains.set("other", {
        xml: '<domain><name>other</name><cputune><vcpupin vcpu="0" cpuset="0"/><vcpupin vcpu="1" cpuset="1"/></cputune></domain>',
        state: "running",
      });
      await deployVm(spec({ name: "a", vcpus: 2, pin: true }), deps(report));
      expect(pins(lv.domains.get("a")?.xml ?? "")).toEqual([2, 3]);
      const many = await deployMany(
        ["b", "c"].map((name) => spec({ name, vcpus: 2, pin: true })),
        deps(report),
        { concurrency: 2 },
      );
      expect(many.every((m) => m.ok)).toBe(true);
      const used = ["b", "c"].flatMap((name) => pins(lv.domains.get(name)?.xml ?? ""));
      expect(used.sort()).toEqual([4, 5, 6, 7]);
    });
  },
);
