// kvmstrap verify against synthetic host trees (--root): what the plan or the answer promised, held
// or broken one promise at a time, through the CLI command that ships (exit codes, the verdict line,
// verify.json held to its schema) and the app layer.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runVerify, verifyResultSchema } from "../../src/app/verify.js";
import { hostChecks } from "../../src/app/verify-checks.js";
import { promisesOf } from "../../src/app/verify-promises.js";
import { verifyCommand } from "../../src/cli/verify-command.js";
import type { HostReport } from "../../src/detect/types.js";
import { captureCli } from "../helpers/capture-cli.js";
import type { SysfsFixture } from "../helpers/sysfs-fixture.js";
import { VFIO } from "../helpers/sysfs-fixture.js";
import { buildConfiguredHost, configuredPlan, HOST, journalRun, stateDirOfRoot } from "./verify-fixture.js";

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

async function host(vendor?: "GenuineIntel" | "AuthenticAMD", plan = configuredPlan(vendor)) {
  const fx = buildConfiguredHost(vendor);
  cleanup.push(() => fx.cleanup());
  await journalRun(stateDirOfRoot(fx.root), plan);
  return fx;
}

const verifyJson = (fx: SysfsFixture) =>
  verifyResultSchema.parse(
    JSON.parse(readFileSync(path.join(stateDirOfRoot(fx.root), "verify.json"), "utf8")),
  );

const run = (fx: SysfsFixture, ...args: string[]) =>
  captureCli(() => verifyCommand(["--root", fx.root, ...args]));

describe("kvmstrap verify on a tree, from the journal's plan", () => {
  it("passes when every promise holds: exit 0, the PASS line, verify.json by the schema", async () => {
    const fx = await host();
    const r = await run(fx);
    expect(r.stdout).toBe("KVMSTRAP-VERIFY: PASS\n");
    expect(r.code).toBe(0);
    const result = verifyJson(fx);
    expect(result.status).toBe("pass");
    expect(result.source.kind).toBe("journal");
    const byId = new Map(result.checks.map((c) => [c.id, c]));
    for (const id of [
      "apply.run",
      "module.kvm",
      "module.kvm_intel",
      "module.vfio_pci",
      "cmdline.intel_iommu",
      "cmdline.iommu",
      "iommu.groups",
      `vfio.${VFIO.gpu}`,
      `vfio.${VFIO.audio}`,
      `sriov.${HOST.pfName}`,
      `bridge.${HOST.bridge}`,
    ])
      expect(byId.get(id)?.status, id).toBe("pass");
    expect(byId.has("module.kvm_amd")).toBe(false);
    expect(byId.get("bridge.br0")?.found).toContain("eno1");
  });

  it("asks for the CPU vendor's module: kvm_amd on an AMD host, never kvm_intel", async () => {
    const fx = await host("AuthenticAMD");
    const r = await run(fx, "--json");
    expect(r.code).toBe(0);
    const ids = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.map((c) => c.id);
    expect(ids).toContain("module.kvm_amd");
    expect(ids).not.toContain("module.kvm_intel");
  });

  it("live-only checks are unknown on a tree, never a pass or a fail", async () => {
    const fx = await host();
    const r = await run(fx, "--json");
    const checks = verifyResultSchema.parse(JSON.parse(r.stdout)).checks;
    for (const id of ["kvm.functional", "vm.boot"]) {
      const c = checks.find((x) => x.id === id);
      expect(c?.status, id).toBe("unknown");
      expect(c?.found).toContain("not checked on a tree");
    }
  });

  it("a module not loaded fails, named in the line", async () => {
    const fx = await host();
    fx.remove("/sys/module/vhost_net");
    const r = await run(fx);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("KVMSTRAP-VERIFY: FAIL (1 failed: module.vhost_net)\n");
    expect(r.stderr).toContain("[FAIL] module.vhost_net: not loaded");
  });

  it("a CPU without VT-x/AMD-V: its KVM module missing is a warning, a failure once the answer requires KVM", async () => {
    const fx = await host();
    fx.file("/proc/cpuinfo", "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu lm\n\n");
    fx.remove("/sys/module/kvm_intel");
    const r = await run(fx, "--json");
    expect(r.code).toBe(0);
    const c = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.find((x) => x.id === "module.kvm_intel");
    expect(c).toMatchObject({
      status: "warn",
      found: "not loaded (the CPU reports no VT-x/AMD-V, so it cannot load)",
    });
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, "version: 1\nkvm: {}\nrequires:\n  checks: { kvm.functional: fail }\n");
    const strict = await run(fx, answer);
    expect(strict.code).toBe(1);
    expect(strict.stdout).toContain("module.kvm_intel");
  });

  it("a built-in module without /sys/module shows by its driver: vfio-pci's driver directory", async () => {
    const fx = await host();
    fx.remove("/sys/module/vfio_pci");
    const r = await run(fx, "--json");
    const c = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.find((x) => x.id === "module.vfio_pci");
    expect(c).toMatchObject({
      status: "pass",
      found: "in the kernel (/sys/bus/pci/drivers/vfio-pci exists)",
    });
    fx.remove("/sys/bus/pci/drivers/vfio-pci");
    const gone = await run(fx);
    expect(gone.stdout).toContain("module.vfio_pci");
  });

  it("a module built into the kernel (modules.builtin) passes", async () => {
    const fx = await host();
    fx.remove("/sys/module/vhost_net");
    fx.file(`/lib/modules/${HOST.kernel}/modules.builtin`, "kernel/drivers/vhost/vhost_net.ko\n");
    const r = await run(fx, "--json");
    const c = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.find((x) => x.id === "module.vhost_net");
    expect(c).toMatchObject({ status: "pass", found: "built into the kernel" });
  });

  it("a passthrough device bound to another driver fails with the driver it has", async () => {
    const fx = await host();
    fx.bindDriver(VFIO.gpu, "nouveau");
    const r = await run(fx);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`vfio.${VFIO.gpu}`);
    const c = verifyJson(fx).checks.find((x) => x.id === `vfio.${VFIO.gpu}`);
    expect(c).toMatchObject({ status: "fail", expected: "bound to vfio-pci", found: "bound to nouveau" });
    expect(c?.where).toContain(`/sys/bus/pci/devices/${VFIO.gpu}/driver`);
  });

  it("a bridge with no port up fails, naming the bridge and its ports", async () => {
    const fx = await host();
    fx.file(`${fx.netPath(HOST.bridge)}/carrier`, "0\n");
    fx.file(`${fx.netPath(HOST.uplink)}/carrier`, "0\n");
    const r = await run(fx);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("KVMSTRAP-VERIFY: FAIL (1 failed: bridge.br0)\n");
    const c = verifyJson(fx).checks.find((x) => x.id === "bridge.br0");
    expect(c?.found).toMatch(/bridge br0: no carrier; ports: eno1 \(up, no carrier\)/);
  });

  it("a missing bridge fails", async () => {
    const fx = await host();
    fx.remove(`/sys/class/net/${HOST.bridge}`);
    const r = await run(fx, "--json");
    const c = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.find((x) => x.id === "bridge.br0");
    expect(c).toMatchObject({ status: "fail", found: "bridge br0 does not exist" });
  });

  it("VFs missing on a PF fail with what sysfs shows", async () => {
    const fx = buildConfiguredHost();
    cleanup.push(() => fx.cleanup());
    const plan = configuredPlan();
    const numvfs = plan.actions.find((a) => a.id === `sriov.numvfs.${HOST.pfName}`);
    if (numvfs?.kind === "write-sysfs") numvfs.value = "4";
    await journalRun(stateDirOfRoot(fx.root), plan);
    const r = await run(fx);
    expect(r.code).toBe(1);
    const c = verifyJson(fx).checks.find((x) => x.id === `sriov.${HOST.pfName}`);
    expect(c).toMatchObject({ status: "fail", expected: `4 VFs on ${HOST.pfName} (${HOST.pf})` });
    expect(c?.found).toBe("sriov_numvfs=2, 2 VF function(s) present");
  });

  it("IOMMU off (no groups) and a kernel parameter missing fail", async () => {
    const fx = await host();
    fx.remove("/sys/kernel/iommu_groups");
    fx.dir("/sys/kernel/iommu_groups");
    const all = [
      VFIO.igpu,
      VFIO.rootPort,
      VFIO.gpu,
      VFIO.audio,
      "0000:00:1c.0",
      HOST.pf,
      ...HOST.vfs,
      HOST.mgmtPci,
    ];
    for (const a of all) fx.remove(`${fx.pciPath(a)}/iommu_group`);
    fx.file("/proc/cmdline", `BOOT_IMAGE=/boot/vmlinuz root=/dev/sda1 ro iommu=pt\n`);
    const r = await run(fx);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/cmdline\.intel_iommu/);
    expect(r.stdout).toMatch(/iommu\.groups/);
  });

  it("a run that still waits for its reboot fails apply.run", async () => {
    const fx = buildConfiguredHost();
    cleanup.push(() => fx.cleanup());
    await journalRun(stateDirOfRoot(fx.root), configuredPlan(), "awaiting-reboot");
    const r = await run(fx);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("KVMSTRAP-VERIFY: FAIL (1 failed: apply.run)\n");
  });

  it("--out writes the result there, atomically, and --json prints the same object", async () => {
    const fx = await host();
    const out = path.join(fx.root, "elsewhere", "v.json");
    const r = await run(fx, "--json", "--out", out);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(JSON.parse(r.stdout));
  });

  it("--console writes the line to every console the kernel lists", async () => {
    const fx = await host();
    fx.file("/sys/class/tty/console/active", "tty0 ttyS0\n");
    fx.file("/dev/tty0", "");
    fx.file("/dev/ttyS0", "");
    const r = await run(fx, "--console");
    expect(r.code).toBe(0);
    for (const t of ["tty0", "ttyS0"])
      expect(readFileSync(path.join(fx.root, "dev", t), "utf8")).toBe("KVMSTRAP-VERIFY: PASS\r\n");
  });
});

describe("kvmstrap verify: input errors exit 2", () => {
  it("no answer and no journal", async () => {
    const fx = buildConfiguredHost();
    cleanup.push(() => fx.cleanup());
    const r = await run(fx);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/nothing to verify: no answer file given and no apply run under .*runs/);
  });

  it("a broken answer file, located by file:line", async () => {
    const fx = await host();
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, "version: 1\nkvm:\n  modulez: [kvm]\n");
    const r = await run(fx, answer);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${answer}:3:3`);
  });

  it("a bad flag and an extra argument", async () => {
    expect((await captureCli(() => verifyCommand(["--nope"]))).code).toBe(2);
    expect((await captureCli(() => verifyCommand(["a.yaml", "b.yaml"]))).code).toBe(2);
  });
});

describe("kvmstrap verify with an answer file", () => {
  async function webhook() {
    const got: { body: unknown; headers: IncomingHttpHeaders }[] = [];
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => {
        body += d;
      });
      req.on("end", () => {
        got.push({ body: JSON.parse(body), headers: req.headers });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => server.close());
    const port = (server.address() as { port: number }).port;
    return { url: `http://127.0.0.1:${port}/hook`, got };
  }

  const answerText = (url: string) =>
    [
      "version: 1",
      "kvm: {}",
      "network:",
      "  bridges:",
      "    - name: br0",
      "      uplink: { name: eno1 }",
      "storage:",
      "  pools: [{ name: vmstore, type: dir, path: /srv/vm }]",
      "report:",
      `  webhook: ${url}`,
      "  headers: { Authorization: Bearer s3cret-token }",
      "",
    ].join("\n");

  it("checks the answer's bridges and pools, and posts 'verified' to its webhook", async () => {
    const fx = await host();
    const hook = await webhook();
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, answerText(hook.url));
    const r = await run(fx, answer, "--json");
    expect(r.code).toBe(0);
    const result = verifyResultSchema.parse(JSON.parse(r.stdout));
    expect(result.source).toMatchObject({ kind: "answer", file: answer });
    expect(result.checks.find((c) => c.id === "bridge.br0")?.status).toBe("pass");
    expect(result.checks.find((c) => c.id === "pool.vmstore")?.status).toBe("unknown");
    // The journal's run applied another plan: said, not failed.
    expect(result.checks.find((c) => c.id === "apply.run")).toMatchObject({ status: "warn" });
    expect(hook.got).toHaveLength(1);
    expect(hook.got[0]?.body).toMatchObject({
      type: "node",
      phase: "verified",
      detail: "KVMSTRAP-VERIFY: PASS",
    });
    expect(hook.got[0]?.headers.authorization).toBe("Bearer s3cret-token");
  });

  it("an item the rules refuse on this host is a warning that names it, not a failure", async () => {
    const fx = await host();
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, "version: 1\nsriov:\n  - pf: { name: nope0 }\n    numVfs: 2\n");
    const r = await run(fx, answer, "--json");
    expect(r.code).toBe(0);
    const c = verifyResultSchema.parse(JSON.parse(r.stdout)).checks.find((x) => x.id === "answer.refusals");
    expect(c?.status).toBe("warn");
    expect(c?.found).toMatch(/^1 item\(s\) refused: sriov\[0\]/);
  });

  it("posts 'failed' with what failed; the failure handler's summary goes to the consoles and the webhook", async () => {
    const fx = await host();
    fx.file(`${fx.netPath(HOST.bridge)}/carrier`, "0\n");
    fx.file("/sys/class/tty/console/active", "ttyS0\n");
    fx.file("/dev/ttyS0", "");
    const hook = await webhook();
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, answerText(hook.url));
    const r = await run(fx, answer);
    expect(r.code).toBe(1);
    expect(hook.got[0]?.body).toMatchObject({ type: "node", phase: "failed" });
    expect((hook.got[0]?.body as { detail?: string } | undefined)?.detail).toMatch(
      /bridge\.br0: bridge br0: no carrier/,
    );

    const f = await run(fx, "--failed", "kvmstrap-firstboot.service", answer);
    expect(f.code).toBe(0);
    expect(f.stdout).toMatch(
      /^KVMSTRAP-FIRSTBOOT: FAILED \(kvmstrap-firstboot\.service\): apply run \S+ is done; last verify: KVMSTRAP-VERIFY: FAIL \(1 failed: bridge\.br0\)/,
    );
    expect(readFileSync(path.join(fx.root, "dev/ttyS0"), "utf8")).toContain("KVMSTRAP-FIRSTBOOT: FAILED");
    expect(hook.got[1]?.body).toMatchObject({ type: "node", phase: "failed" });
    // The token goes in the header only: never into a body or a line printed.
    expect(JSON.stringify(hook.got.map((g) => g.body)) + f.stdout + f.stderr + r.stderr).not.toContain(
      "s3cret",
    );
  });
});

describe("the failure handler", () => {
  it("still reports on the consoles when the answer cannot be read, saying the webhook was not told", async () => {
    const fx = await host();
    fx.file("/sys/class/tty/console/active", "ttyS0\n");
    fx.file("/dev/ttyS0", "");
    const answer = path.join(fx.root, "answer.yaml");
    writeFileSync(answer, "version: 1\nnope: 1\n");
    const r = await run(fx, "--failed", "kvmstrap-firstboot.service", answer);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^KVMSTRAP-FIRSTBOOT: FAILED \(kvmstrap-firstboot\.service\): apply run \S+ is done; verify did not finish/,
    );
    expect(r.stdout).toContain(`the webhook was not told: ${answer}:2:1`);
    expect(readFileSync(path.join(fx.root, "dev/ttyS0"), "utf8")).toContain("KVMSTRAP-FIRSTBOOT: FAILED");
  });
});

describe("the KVM probe's verdict", () => {
  const reportWith = (verdict: "usable" | "unusable"): HostReport =>
    ({
      cpu: { vendor: "GenuineIntel", virt: "vmx" },
      kvm: { probe: { verdict, detail: "stalled", stages: [], cached: false } },
    }) as unknown as HostReport;
  const plan = { ...configuredPlan(), actions: [], expect: { cmdlineParams: [], vfio: [] } };
  const probeOf = (report: HostReport, required: boolean) =>
    hostChecks(
      promisesOf(
        plan,
        required ? ({ version: 1, requires: { checks: { "kvm.functional": "fail" } } } as never) : null,
      ),
      { report, live: true, modules: new Map() },
    ).find((c) => c.id === "kvm.functional");

  it("unusable KVM is a warning unless the answer requires kvm.functional, then a failure", () => {
    expect(probeOf(reportWith("unusable"), false)).toMatchObject({ status: "warn" });
    expect(probeOf(reportWith("unusable"), false)?.found).toContain("VMs run under TCG");
    expect(probeOf(reportWith("unusable"), true)).toMatchObject({ status: "fail" });
    expect(probeOf(reportWith("usable"), true)).toMatchObject({ status: "pass" });
  });
});

describe("runVerify", () => {
  it("refuses a root that is not a machine tree", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-verify-empty-"));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    await journalRun(path.join(dir, "var/lib/kvmstrap"), configuredPlan());
    await expect(runVerify({ root: dir })).rejects.toThrow(/holds neither proc\/ nor sys\//);
  });
});
