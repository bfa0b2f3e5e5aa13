// `kvmstrap vm deploy --answer FILE` in process, against the fake libvirt and the real qemu-img:
// every entry of the vms: section is deployed once; the same file again converges (nothing is defined
// twice); an entry that does not resolve stops the run before anything is created, at file:line:col.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { runUndo } from "../../src/app/apply.js";
import { EventBus } from "../../src/apply/events.js";
import { type VmCommandDeps, vmCommand } from "../../src/cli/vm-command.js";
import type { HostReport } from "../../src/detect/types.js";
import { labReport } from "../answer/hosts.js";
import { captureCli } from "../helpers/capture-cli.js";
import { SRIOV } from "../helpers/sysfs-fixture.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";

const cli = (args: string[], deps: VmCommandDeps) => captureCli(() => vmCommand(args, deps));

describe.skipIf(!hasQemuImg)("kvmstrap vm deploy --answer (fake libvirt, real qemu-img)", () => {
  let root: string;
  let base: string;
  let sysNet: string;
  let report: HostReport;
  let lv: FakeLibvirt;
  let vmDir: string;
  let n = 0;

  const answerFile = (vms: string[], extra: string[] = []) => {
    const file = path.join(root, `answer-${++n}.yaml`);
    writeFileSync(file, ["version: 1", ...extra, "vms:", ...vms, ""].join("\n"));
    return file;
  };
  const entry = (name: string, nics: string) => [
    `  - name: ${name}`,
    `    image: ${base}`,
    "    vcpus: 1",
    "    memoryMiB: 512",
    "    diskGiB: 1",
    "    user:",
    "      name: debian",
    `      sshKeys: ["${KEY}"]`,
    "      sudo: true",
    `    nics: ${nics}`,
  ];
  const args = (file: string, ...more: string[]) => [
    "deploy",
    "--answer",
    file,
    "--dir",
    vmDir,
    "--state-dir",
    path.join(vmDir, ".journal"),
    "--cache",
    path.join(root, "cache"),
    ...more,
  ];
  const deps = (): VmCommandDeps => ({ libvirt: lv, report, sysClassNet: sysNet });
  const defines = () => lv.calls.filter((c) => c === "defineDomain").length;

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kvmstrap-deploy-answer-"));
    base = path.join(root, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    sysNet = path.join(root, "sys-class-net");
    mkdirSync(path.join(sysNet, "br0", "bridge"), { recursive: true });
    report = await labReport();
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  beforeEach(() => {
    lv = new FakeLibvirt();
    for (const name of ["default", `${SRIOV.pfName}-vfs`])
      lv.networks.set(name, { name, active: true, autostart: true, persistent: true });
    vmDir = path.join(root, `vms-${++n}`);
    mkdirSync(vmDir);
  });

  it("deploys every VM once; the same file again converges and defines nothing more", async () => {
    const file = answerFile(
      [
        ...entry("web1", "[{ network: default }, { bridge: br0 }]"),
        ...entry("web2", `[{ sriov: { name: ${SRIOV.pfName} } }]`),
        ...entry("web3", "[{ network: default }]"),
      ],
      [`sriov: [{ pf: { name: ${SRIOV.pfName} }, numVfs: 2 }]`],
    );
    const first = await cli(args(file, "--concurrency", "2"), deps());
    expect(first.code, first.stderr).toBe(0);
    for (const name of ["web1", "web2", "web3"])
      expect(first.stdout).toContain(`${name}: deployed and started`);
    expect(first.stdout).toContain("3 of 3 VMs deployed");
    expect(defines()).toBe(3);
    expect([...lv.domains.keys()].sort()).toEqual(["web1", "web2", "web3"]);
    expect([...lv.domains.values()].every((d) => d.state === "running")).toBe(true);
    expect(lv.domains.get("web2")?.xml).toContain(`<source network="${SRIOV.pfName}-vfs"/>`);
    expect(lv.domains.get("web1")?.xml).toContain('<source bridge="br0"/>');

    await lv.destroy("web3");
    const second = await cli(args(file), deps());
    expect(second.code, second.stderr).toBe(0);
    for (const name of ["web1", "web2", "web3"])
      expect(second.stdout).toContain(`${name}: already deployed from this spec (converged)`);
    expect(defines()).toBe(3);
    expect(lv.domains.size).toBe(3);
    expect(lv.domains.get("web3")?.state).toBe("running");
    // One directory per VM, beside the deploy journal.
    expect(readdirSync(vmDir).sort()).toEqual([".journal", "web1", "web2", "web3"]);
  });

  it("the deploy is journaled in the state dir apply and undo use: undo reverses the last VM, then the one before", async () => {
    const file = answerFile([
      ...entry("web1", "[{ network: default }]"),
      ...entry("web2", "[{ network: default }]"),
    ]);
    const stateDir = path.join(root, `state-${++n}`);
    const argv = args(file, "--concurrency", "1");
    argv[argv.indexOf("--state-dir") + 1] = stateDir;
    const r = await cli(argv, deps());
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(vmDir).sort()).toEqual(["web1", "web2"]); // no journal beside the VMs
    const undo = () => runUndo({ root: "/", stateDir, bus: new EventBus(), adapters: { libvirt: lv } });
    expect((await undo()).status).toBe("undone");
    expect([...lv.domains.keys()]).toEqual(["web1"]);
    expect((await undo()).status).toBe("undone");
    expect(lv.domains.size).toBe(0);
    expect(readdirSync(vmDir).flatMap((d) => readdirSync(path.join(vmDir, d)))).toEqual([]);
    // --state-dir is the deploy's: other vm subcommands refuse it.
    const list = await cli(["list", "--state-dir", stateDir], deps());
    expect([list.code, list.stderr]).toEqual([
      2,
      expect.stringMatching(/--state-dir applies to vm deploy only/),
    ]);
  });

  it("--json: one result object per VM", async () => {
    const file = answerFile(entry("web1", "[{ network: default }]"));
    const r = await cli(args(file, "--json"), deps());
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout.slice(r.stdout.lastIndexOf('{\n  "type": "result"')));
    expect(result.deploys).toMatchObject([{ name: "web1", ok: true, deploy: { converged: false } }]);
  });

  it("an entry that does not resolve: exit 2 at file:line:col, nothing created", async () => {
    const file = answerFile([
      ...entry("web1", "[{ network: default }]"),
      ...entry("web2", "\n      - bridge: nobr0"),
    ]);
    const r = await cli(args(file), deps());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:23:17: vms[1].nics[0].bridge: bridge nobr0 is neither defined`);
    expect(lv.domains.size).toBe(0);
    expect(readdirSync(vmDir)).toEqual([]);
  });

  it("usage: --answer replaces the spec flags; --concurrency must be positive", async () => {
    const file = answerFile(entry("web1", "[{ network: default }]"));
    const a = await cli([...args(file), "--name", "x"], deps());
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/--answer and --name cannot be combined/);
    const b = await cli(args(file, "--concurrency", "0"), deps());
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--concurrency must be a positive number/);
    expect(lv.domains.size).toBe(0);
  });
});
