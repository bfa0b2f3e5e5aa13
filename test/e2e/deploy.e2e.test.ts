// kvmstrap's own deploy path end to end on the test libvirtd: deployVm (overlay on the cached Debian
// guest image, NoCloud seed, domain type from detection, direct kernel boot), then waitReady's
// timeline through every stage up to `cloud-init status` done, with phone_home received by
// startPhoneHomeServer. Then: a second deploy of the same spec converges (no new definition, a
// stopped domain is started), and deleteVm removes the VM's files but never the base image.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Journal } from "../../src/apply/journal.js";
import { detectHost } from "../../src/detect/index.js";
import type { HostReport } from "../../src/detect/types.js";
import { ExecaRunner } from "../../src/host/commands.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { type DeployDeps, deployVm, type VmSpec } from "../../src/vm/deploy.js";
import type { Libvirt } from "../../src/vm/libvirt.js";
import { backingFile, deleteVm, listVms } from "../../src/vm/manage.js";
import { type PhoneHomeServer, startPhoneHomeServer } from "../../src/vm/phone-home.js";
import { type ReadyResult, waitReady } from "../../src/vm/readiness.js";
import { VirshLibvirt } from "../../src/vm/virsh-libvirt.js";
import { networkXml, sshPublicKey, TEST_NET } from "./guest-fixture.js";
import { ensureGuestImage, type GuestImage } from "./guest-image.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const name = `kvst-deploy-${Date.now().toString(36).slice(-5)}`;
const sshKey = sshPublicKey(`e2e@${name}`);

let daemon: TestLibvirtd | undefined;
let lv: Libvirt;
let image: GuestImage;
let report: HostReport;
let home: PhoneHomeServer | undefined;
let vmDir = "";
let spec: VmSpec;
let deps: DeployDeps;
let baseHash = "";
let ready: ReadyResult | undefined;
const t0 = Date.now();

const sha = (f: string) =>
  new Promise<string>((resolve, reject) => {
    const h = createHash("sha256");
    createReadStream(f)
      .on("data", (c) => h.update(c))
      .on("end", () => resolve(h.digest("hex")))
      .on("error", reject);
  });
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

beforeAll(async () => {
  image = await ensureGuestImage();
  baseHash = await sha(image.qcow2);
  report = await detectHost({ fs: new RootedHostFs("/") }); // no runner: probe not run, so TCG
  daemon = await startTestLibvirtd();
  lv = new VirshLibvirt(daemon.uri);
  await lv.netDefine(networkXml());
  await lv.netStart(TEST_NET.name);
  await daemon.withHostLink(TEST_NET.bridge, `${TEST_NET.host}/${TEST_NET.prefix}`);
  home = await startPhoneHomeServer(TEST_NET.host);
  vmDir = await mkdtemp(path.join("/var/tmp", "kvmstrap-e2e-deploy-"));
  const info = JSON.parse((await execa("qemu-img", ["info", "--output=json", image.qcow2])).stdout);
  spec = {
    name,
    image: image.qcow2,
    vcpus: 2,
    memoryMiB: 1024,
    diskGiB: Math.ceil(info["virtual-size"] / 2 ** 30) + 1,
    user: { name: image.user, sshKeys: [sshKey], sudo: true },
    nics: [{ kind: "network", network: TEST_NET.name }],
    kernel: { path: image.kernel, initrd: image.initrd, cmdline: image.append },
    runcmd: [["sh", "-c", "echo deploy-ok > /var/tmp/kvmstrap-runcmd"]],
  };
  deps = { libvirt: lv, report, dir: vmDir, phoneHome: { url: home.url } };
  console.log(`[e2e deploy] setup ${secs(Date.now() - t0)}`);
});

afterAll(async () => {
  if (daemon) {
    if (!ready) {
      const log = await readFile(path.join(vmDir, name, "serial.log"), "utf8").catch(() => "");
      console.log(`[e2e deploy] serial console (last 30 lines):\n${log.split("\n").slice(-30).join("\n")}`);
    }
    await lv.destroy(name).catch(() => {});
    await lv.undefineDomain(name).catch(() => {});
    await lv.netDestroy(TEST_NET.name).catch(() => {});
    await lv.netUndefine(TEST_NET.name).catch(() => {});
    await daemon.stop();
  }
  await home?.close();
  if (vmDir) await rm(vmDir, { recursive: true, force: true });
  console.log(`[e2e deploy] total ${secs(Date.now() - t0)}`);
});

describe("kvmstrap vm deploy on the test libvirtd", () => {
  it("deploys and becomes ready: defined, started, address, phone-home, cloud-init done", async () => {
    const t = Date.now();
    const r = await deployVm(spec, deps);
    console.log(
      `[e2e deploy] deployVm ${secs(Date.now() - t)}: ${r.steps.map((s) => `${s.id} ${s.durationMs} ms`).join(", ")}`,
    );
    expect(r.converged).toBe(false);
    expect(r.domainType).toBe("qemu");
    // The deploy was a journaled plan: every VM action done, in order, under the VM dir's journal.
    const run = await new Journal(path.join(vmDir, ".journal")).load(r.runId);
    expect(run?.phase).toBe("done");
    expect(run?.actions.map((a) => [a.id.replace(`vm.${name}.`, ""), a.status])).toEqual([
      ["define", "done"],
      ["overlay", "done"],
      ["seed", "done"],
      ["record", "done"],
      ["start", "done"],
    ]);
    // libvirtd keeps kvmstrap's mark in the definition: that is how a re-run knows the domain is its own.
    expect(await lv.domainXml(name)).toContain("urn:kvmstrap:vm:1");
    expect(await backingFile(new ExecaRunner(), r.overlay)).toBe(image.qcow2);
    expect(await lv.domainState(name)).toBe("running");

    ready = await waitReady(name, deps, { timeoutMs: 200_000, phoneHome: home });
    for (const s of ready.timeline)
      console.log(`[e2e deploy]   ${s.stage.padEnd(10)} +${secs(s.durationMs)} ${s.detail ?? ""}`);
    expect(ready.timeline.map((s) => s.stage)).toEqual([
      "defined",
      "started",
      "address",
      "phone-home",
      "cloud-init",
    ]);
    expect(ready.address).toMatch(/^192\.168\.150\.\d+$/);
    expect(ready.timeline.at(-1)?.detail).toMatch(/status: done/);
    // cloud-init really ran from kvmstrap's seed: hostname, ssh key, runcmd.
    expect(await lv.agentHostname(name)).toBe(name);
    const keys = await lv.agentExec(name, "/bin/cat", [`/home/${image.user}/.ssh/authorized_keys`]);
    expect(keys.stdout).toContain(sshKey);
    expect((await lv.agentExec(name, "/bin/cat", ["/var/tmp/kvmstrap-runcmd"])).stdout.trim()).toBe(
      "deploy-ok",
    );
    expect(home?.posts.get(r.instanceId)?.form.hostname).toBe(name);
  });

  it("a second deploy of the same spec converges: no new definition; a stopped VM is started", async () => {
    const again = await deployVm(spec, deps);
    expect(again.converged).toBe(true);
    await lv.destroy(name);
    const third = await deployVm(spec, deps);
    expect(third.converged).toBe(true);
    expect(await lv.domainState(name)).toBe("running");
    expect((await listVms(deps)).filter((v) => v.name === name)).toEqual([
      { name, state: "running", managed: true },
    ]);
  });

  it("delete removes the domain, overlay and seed, and leaves the base image intact", async () => {
    const d = await deleteVm(name, deps);
    expect(d.keptBase).toBe(image.qcow2);
    expect(d.removed).not.toContain(image.qcow2);
    expect(await lv.domainExists(name)).toBe(false);
    // Only the deploy journal stays (it records the runs; vm delete is not one of them).
    expect(await readdir(vmDir)).toEqual([".journal"]);
    expect((await stat(image.qcow2)).isFile()).toBe(true);
    expect(await sha(image.qcow2)).toBe(baseHash);
  });
});
