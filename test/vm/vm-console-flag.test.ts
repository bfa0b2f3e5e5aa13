// `kvmstrap vm deploy --console vnc|spice [--console-listen ADDR]`: a VM deployed from the flags gets
// the same <graphics> as one deployed from an answer file whose consoles: section asks for the same
// (both through the CLI, the fake libvirt and the real qemu-img), and the console rules an answer is
// held to (no wildcard, the management address) refuse the flags with exit 2 naming them.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type VmCommandDeps, vmCommand } from "../../src/cli/vm-command.js";
import type { HostReport } from "../../src/detect/types.js";
import { labReport } from "../answer/hosts.js";
import { captureCli } from "../helpers/capture-cli.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const hasQemuImg = spawnSync("qemu-img", ["--version"]).status === 0;
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@kvmstrap";
const MGMT = "192.0.2.10";

const graphicsOf = (xml: string | undefined) =>
  (xml ?? "").match(/<graphics[\s\S]*?<\/graphics>|<video>[\s\S]*?<\/video>/g) ?? [];

describe.skipIf(!hasQemuImg)("vm deploy --console (fake libvirt, real qemu-img)", () => {
  let root: string;
  let base: string;
  let report: HostReport;
  let n = 0;
  const cli = async (args: string[]) => {
    const lv = new FakeLibvirt();
    lv.networks.set("default", { name: "default", active: true, autostart: true, persistent: true });
    const dir = path.join(root, `vms-${++n}`);
    mkdirSync(dir);
    const deps: VmCommandDeps = { libvirt: lv, report };
    const common = [
      "--dir",
      dir,
      "--state-dir",
      path.join(dir, ".journal"),
      "--cache",
      path.join(root, "cache"),
    ];
    return { lv, ...(await captureCli(() => vmCommand(["deploy", ...args, ...common], deps))) };
  };

  beforeAll(async () => {
    root = mkdtempSync(path.join(tmpdir(), "kvmstrap-console-flag-"));
    base = path.join(root, "base.qcow2");
    execFileSync("qemu-img", ["create", "-q", "-f", "qcow2", base, "64M"]);
    writeFileSync(path.join(root, "key.pub"), `${KEY}\n`);
    report = await labReport();
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  const flags = (name: string, ...more: string[]) => [
    "--name",
    name,
    "--image",
    base,
    "--vcpus",
    "1",
    "--memory",
    "512",
    "--disk",
    "1",
    "--ssh-key",
    path.join(root, "key.pub"),
    ...more,
  ];

  it("the flags give the VM the <graphics> an answer file's consoles: section gives it", async () => {
    const fromFlags = await cli(
      flags("web", "--console", "vnc", "--console", "spice", "--console-listen", MGMT),
    );
    expect(fromFlags.code, fromFlags.stderr).toBe(0);
    const file = path.join(root, "answer.yaml");
    writeFileSync(
      file,
      [
        "version: 1",
        `consoles: { vnc: true, spice: true, listen: "${MGMT}" }`,
        "vms:",
        "  - name: web",
        `    image: ${base}`,
        "    vcpus: 1",
        "    memoryMiB: 512",
        "    diskGiB: 1",
        `    user: { name: kvmstrap, sshKeys: ["${KEY}"], sudo: true }`,
        "    nics: [{ network: default }]",
        "",
      ].join("\n"),
    );
    const fromAnswer = await cli(["--answer", file]);
    expect(fromAnswer.code, fromAnswer.stderr).toBe(0);
    const a = graphicsOf(fromFlags.lv.domains.get("web")?.xml);
    expect(a).toHaveLength(3); // VNC, SPICE (every channel on its TLS port) and the video card
    expect(a.join("\n")).toContain(`<graphics type="vnc" port="-1" autoport="yes" listen="${MGMT}">`);
    expect(a.join("\n")).toContain('defaultMode="secure"');
    expect(a).toEqual(graphicsOf(fromAnswer.lv.domains.get("web")?.xml));
    // No flag, no console, as before.
    const plain = await cli(flags("plain"));
    expect(plain.code, plain.stderr).toBe(0);
    expect(graphicsOf(plain.lv.domains.get("plain")?.xml)).toEqual([]);
  });

  it("a wildcard address is refused naming --console-listen, before anything is defined", async () => {
    const r = await cli(flags("web", "--console", "vnc", "--console-listen", "0.0.0.0"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--console-listen: 0.0.0.0 listens on every address of the host");
    expect(r.lv.calls).not.toContain("defineDomain");
  });

  it("without --console-listen the report's management address is used, and a report without one says so", async () => {
    const withMgmt: HostReport = {
      ...report,
      nics: report.nics.map((nic, i) =>
        i === 0
          ? { ...nic, management: true, addresses: [{ family: "ipv4", address: MGMT, prefix: 24 }] }
          : { ...nic, management: false },
      ),
    } as HostReport;
    const saved = report;
    report = withMgmt;
    try {
      const r = await cli(flags("web", "--console", "spice"));
      expect(r.code, r.stderr).toBe(0);
      expect(r.lv.domains.get("web")?.xml).toContain(
        `<graphics type="spice" autoport="yes" listen="${MGMT}"`,
      );
    } finally {
      report = saved;
    }
    const bare: HostReport = { ...report, nics: report.nics.map((nic) => ({ ...nic, management: false })) };
    report = bare;
    try {
      const r = await cli(flags("web", "--console", "vnc"));
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("--console-listen: the host report has no management address");
    } finally {
      report = saved;
    }
  });

  it("--console-tickets deploys the console locked, as consoles.tickets: true does", async () => {
    const r = await cli(flags("web", "--console", "vnc", "--console-listen", MGMT, "--console-tickets"));
    expect(r.code, r.stderr).toBe(0);
    expect(r.lv.domains.get("web")?.xml).toContain(
      `<graphics type="vnc" port="-1" autoport="yes" listen="${MGMT}" passwd="" passwdValidTo="1970-01-01T00:00:00">`,
    );
    const alone = await cli(flags("web", "--console-tickets"));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain("--console-tickets needs --console");
  });

  it("bad values are usage errors", async () => {
    const rdp = await cli(flags("web", "--console", "rdp"));
    expect([rdp.code, rdp.stderr]).toEqual([
      2,
      expect.stringContaining('--console takes vnc or spice, not "rdp"'),
    ]);
    const alone = await cli(flags("web", "--console-listen", MGMT));
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain("--console-listen needs --console");
  });
});
