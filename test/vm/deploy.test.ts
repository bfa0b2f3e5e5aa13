// deployVm's orchestration against a fake Libvirt (the real libvirtd is the e2e tier's) and the real
// qemu-img in a temporary directory. Every bad input must give a clear error and leave nothing
// behind: no overlay, no seed, no VM directory, no domain definition.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { undoLastRun } from "../../src/apply/engine.js";
import { Journal } from "../../src/apply/journal.js";
import type { HostReport } from "../../src/detect/types.js";
import type { CommandRunner } from "../../src/host/commands.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { type DeployDeps, DeployError, deployVm, type VmSpec } from "../../src/vm/deploy.js";
import { backingFile, deleteVm, deployMany, listVms, showVm, stopVm } from "../../src/vm/manage.js";
import { startPhoneHomeServer } from "../../src/vm/phone-home.js";
import { ReadinessError, waitReady } from "../../src/vm/readiness.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

const report = {
  kvm: { probe: { verdict: "unusable", detail: "KVM internal error in the probe guest" } },
  memory: { numa: [{ id: 0, cpus: "0-1" }] },
  pci: [],
  cpu: { onlineCpus: "0-1" },
} as unknown as HostReport;

let root: string;
let base: string;
let baseHash: string;
let lv: FakeLibvirt;
let vmDir: string;
let n = 0;

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");
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
const deps = (over: Partial<DeployDeps> = {}): DeployDeps => ({
  libvirt: lv,
  report,
  dir: vmDir,
  imageCache: path.join(root, "cache"),
  stateDir: path.join(root, `state-${n}`),
  ...over,
});

/** Nothing of the failed deploy remains, and the base is untouched. */
function expectNothingLeft(name = "web1") {
  expect(readdirSync(vmDir)).toEqual([]);
  expect(lv.domains.has(name)).toBe(false);
  expect(sha(base)).toBe(baseHash);
}

async function failure(p: Promise<unknown>): Promise<DeployError> {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e, "the deploy should have failed").toBeInstanceOf(DeployError);
  return e as DeployError;
}

describe.skipIf(!hasQemuImg)("deployVm (fake libvirt, real qemu-img)", () => {
  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), "kvmstrap-deploy-"));
    base = path.join(root, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    baseHash = sha(base);
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    lv = new FakeLibvirt();
    lv.networks.set("default", { name: "default", active: true, autostart: true, persistent: true });
    vmDir = path.join(root, `vms-${++n}`);
    mkdirSync(vmDir);
  });

  it("deploys: an overlay backed by the base (never a copy), a seed, a defined and running domain", async () => {
    const r = await deployVm(spec(), deps());
    expect(r.converged).toBe(false);
    expect(r.domainType).toBe("qemu");
    expect(r.warnings.join()).toMatch(/TCG/);
    expect(r.steps.map((s) => s.id)).toEqual([
      "nics",
      "preflight",
      "define",
      "overlay",
      "seed",
      "record",
      "start",
    ]);
    expect(lv.domains.get("web1")?.state).toBe("running");
    const xml = lv.domains.get("web1")?.xml ?? "";
    expect(xml).toContain('<domain type="qemu">');
    expect(xml).toContain(r.overlay);
    expect(xml).toContain(r.seed);
    expect(await backingFile(new ExecaRunner(), r.overlay)).toBe(base);
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", r.overlay], { encoding: "utf8" }),
    );
    expect(info["virtual-size"]).toBe(2 ** 30);
    expect(info["backing-filename-format"]).toBe("qcow2");
    expect(readdirSync(path.join(vmDir, "web1")).sort()).toEqual(["disk.qcow2", "seed.iso", "vm.json"]);
  });

  it("a deploy is a journaled run: a half-done one converges, and undo removes the VM", async () => {
    const stateDir = path.join(root, `state-${n}`);
    // A previous deploy got as far as defining the domain and writing the overlay, then died.
    lv.failOn = "start";
    await expect(deployVm(spec(), deps())).rejects.toThrow(/start failed/);
    expect(lv.domains.has("web1")).toBe(false); // its own run was undone
    const r = await deployVm(spec(), deps());
    const run = await new Journal(stateDir).load(r.runId);
    expect(run?.phase).toBe("done");
    expect(run?.actions.map((a) => a.status)).toEqual(["done", "done", "done", "done", "done"]);
    expect(lv.domains.get("web1")?.state).toBe("running");
    const mark = lv.calls.length;
    const undone = await undoLastRun({
      target: new RootedTargetFs("/"),
      runner: new ExecaRunner(),
      libvirt: lv,
      stateDir,
    });
    expect(undone.status).toBe("undone");
    expect(lv.calls.slice(mark).filter((c) => c === "destroy" || c === "undefineDomain")).toEqual([
      "destroy",
      "undefineDomain",
    ]);
    expectNothingLeft();
  });

  it("an unknown image: a clear error, nothing left", async () => {
    const e = await failure(deployVm(spec({ image: "no-such-image" }), deps()));
    expect(e.code).toBe("unknown-image");
    expect(e.message).toMatch(/unknown image "no-such-image"/);
    const e2 = await failure(deployVm(spec({ image: path.join(root, "missing.qcow2") }), deps()));
    expect(e2.message).toMatch(/missing\.qcow2 does not exist/);
    expectNothingLeft();
  });

  it("a corrupt base image (a file of garbage): a clear error, nothing left", async () => {
    const junk = path.join(root, "junk.qcow2");
    writeFileSync(junk, Buffer.alloc(1 << 20, 0x5a));
    const e = await failure(deployVm(spec({ image: junk }), deps()));
    expect(e.code).toBe("corrupt-image");
    expect(e.message).toMatch(/junk\.qcow2 is corrupt or not a qcow2 image/);
    expectNothingLeft();
  });

  it("a bridge that does not exist: the error names it, nothing left", async () => {
    const e = await failure(deployVm(spec({ nics: [{ kind: "bridge", bridge: "kvstnobr0" }] }), deps()));
    expect(e.code).toBe("no-bridge");
    expect(e.message).toBe("bridge kvstnobr0 does not exist on this host");
    const e2 = await failure(deployVm(spec({ nics: [{ kind: "network", network: "nonet" }] }), deps()));
    expect(e2.code).toBe("no-network");
    expect(e2.message).toMatch(/network nonet does not exist/);
    expectNothingLeft();
  });

  it("a name already taken by a domain kvmstrap did not deploy: refused, that domain untouched", async () => {
    await lv.defineDomain("<domain><name>web1</name></domain>");
    const e = await failure(deployVm(spec(), deps()));
    expect(e.code).toBe("name-taken");
    expect(e.message).toMatch(/^name taken: a domain named web1 already exists/);
    expect(lv.domains.get("web1")?.xml).toBe("<domain><name>web1</name></domain>");
    expect(readdirSync(vmDir)).toEqual([]);
  });

  it("libvirtd not running: says so, nothing left", async () => {
    lv.down = true;
    const e = await failure(deployVm(spec(), deps()));
    expect(e.code).toBe("libvirt-unreachable");
    expect(e.message).toMatch(/^libvirtd is not running or not reachable at test:\/\/\/fake/);
    lv.down = false;
    expectNothingLeft();
  });

  it("libvirt failing at define or start: the overlay, seed and definition are removed", async () => {
    lv.failOn = "defineDomain";
    await expect(deployVm(spec(), deps())).rejects.toThrow(/defineDomain failed/);
    expectNothingLeft();
    lv.failOn = "start";
    await expect(deployVm(spec(), deps())).rejects.toThrow(/start failed/);
    expectNothingLeft();
  });

  it("a full disk (a 256 KiB tmpfs as the VM directory): a clear error, nothing left", async (ctx) => {
    const small = path.join(root, `full-${n}`);
    mkdirSync(small);
    const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", small]).status === 0;
    let d = deps({ dir: small });
    if (!mounted) {
      // No mount privilege: simulate ENOSPC by having qemu-img create fail as it does on a full disk.
      const real = new ExecaRunner();
      const enospc: CommandRunner = {
        which: (p) => real.which(p),
        run: (f, a, o) =>
          f === "qemu-img" && a[0] === "create"
            ? Promise.resolve({
                exitCode: 1,
                stdout: "",
                stderr: "qemu-img: No space left on device\n",
                timedOut: false,
              })
            : real.run(f, a, o),
      };
      d = deps({ dir: small, runner: enospc });
      ctx.annotate("tmpfs mount not permitted: ENOSPC simulated through the command runner");
    }
    try {
      // Fill the tmpfs so that what remains cannot hold the overlay or the seed.
      if (mounted) spawnSync("dd", ["if=/dev/zero", `of=${path.join(small, "filler")}`, "bs=4k", "count=40"]);
      const e = await failure(deployVm(spec(), d));
      expect(e.code).toBe("no-space");
      expect(e.message).toMatch(/^no space left on the device holding /);
      expect(readdirSync(small).filter((f) => f !== "filler")).toEqual([]);
      expect(lv.domains.size).toBe(0);
    } finally {
      if (mounted) spawnSync("umount", [small]);
    }
  });

  it("delete removes the domain, overlay and seed, never the base image", async () => {
    const r = await deployVm(spec(), deps());
    expect(await backingFile(new ExecaRunner(), r.overlay)).toBe(base);
    const shown = await showVm("web1", deps());
    expect(shown).toMatchObject({ managed: true, state: "running", backingFile: base });
    const d = await deleteVm("web1", deps());
    expect(d.keptBase).toBe(base);
    expect(d.removed).toEqual(expect.arrayContaining([r.overlay, r.seed]));
    expect(d.removed).not.toContain(base);
    expect(sha(base)).toBe(baseHash);
    expectNothingLeft();
    await expect(deleteVm("web1", deps())).rejects.toThrow(/no VM named web1/);
    await lv.defineDomain("<domain><name>other</name></domain>");
    await expect(deleteVm("other", deps())).rejects.toThrow(/not deployed by kvmstrap/);
  });

  it("deploying the same spec twice converges: started again if stopped, nothing duplicated", async () => {
    await deployVm(spec(), deps());
    await stopVm("web1", deps(), { force: true });
    const again = await deployVm(spec(), deps());
    expect(again.converged).toBe(true);
    expect(lv.domains.get("web1")?.state).toBe("running");
    expect(lv.calls.filter((c) => c === "defineDomain")).toHaveLength(1);
    const changed = await failure(deployVm(spec({ vcpus: 2 }), deps()));
    expect(changed.code).toBe("name-taken");
    expect(changed.message).toMatch(/with a different spec/);
  });

  it("deployMany: bounded concurrency, and the same list twice converges", async () => {
    const specs = ["a1", "a2", "a3", "a4", "a5"].map((name) => spec({ name }));
    const first = await deployMany(specs, deps(), { concurrency: 2 });
    expect(first.map((r) => [r.name, r.ok])).toEqual(specs.map((s) => [s.name, true]));
    const second = await deployMany(specs, deps(), { concurrency: 3 });
    expect(second.every((r) => r.ok && r.result.converged)).toBe(true);
    expect(lv.calls.filter((c) => c === "defineDomain")).toHaveLength(5);
    expect((await listVms(deps())).map((v) => [v.name, v.managed])).toEqual(specs.map((s) => [s.name, true]));
  });
});

describe.skipIf(!hasQemuImg)("waitReady (fake libvirt, real phone_home server)", () => {
  beforeAll(() => {
    root = mkdtempSync(path.join(tmpdir(), "kvmstrap-ready-"));
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

  it("reaches every stage in order: defined, started, address, phone-home, cloud-init", async () => {
    const home = await startPhoneHomeServer("127.0.0.1");
    try {
      const r = await deployVm(spec(), deps({ phoneHome: { url: home.url } }));
      lv.addresses.web1 = [
        {
          iface: "vnet0",
          mac: "52:54:00:00:00:01",
          addrs: [{ family: "ipv4", address: "192.0.2.7", prefix: 24 }],
        },
      ];
      lv.agentUp.add("web1");
      lv.cloudInit = { exitCode: 2, signal: null, stdout: "status: done\n", stderr: "" };
      setTimeout(() => {
        void fetch(home.url.replace("$INSTANCE_ID", r.instanceId), {
          method: "POST",
          body: new URLSearchParams({ instance_id: r.instanceId, hostname: "web1" }),
        });
      }, 50);
      const ready = await waitReady("web1", deps(), { timeoutMs: 5000, phoneHome: home, pollMs: 20 });
      expect(ready.timeline.map((t) => t.stage)).toEqual([
        "defined",
        "started",
        "address",
        "phone-home",
        "cloud-init",
      ]);
      expect(ready.address).toBe("192.0.2.7");
      expect(ready.timeline.at(-1)?.detail).toMatch(/with warnings/);
    } finally {
      await home.close();
    }
  });

  it("a timeout names the last stage reached and a size-capped copy of the serial console", async () => {
    const r = await deployVm(spec(), deps());
    writeFileSync(r.serialLog, `${"x".repeat(10_000)}\nboot line 1\nlast words of the kernel\n`);
    const e = (await waitReady("web1", deps(), { timeoutMs: 200, pollMs: 20, serialCapBytes: 4096 }).catch(
      (x: unknown) => x,
    )) as ReadinessError;
    expect(e).toBeInstanceOf(ReadinessError);
    expect(e.lastStage).toBe("started");
    expect(e.waitingFor).toBe("address");
    expect(e.message).toMatch(/last stage reached started, waiting for address/);
    expect(e.message).toContain(`${r.serialLog}.tail`);
    expect(readFileSync(`${r.serialLog}.tail`).length).toBeLessThanOrEqual(4096);
    expect(e.tail).toContain("last words of the kernel");
  });
});
