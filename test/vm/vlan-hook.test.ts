// The qemu hook's decisions from a domain XML: which `bridge vlan` commands for which tap, or why a
// start is refused. The XML is kvmstrap's own rendering (src/vm/domain-xml.ts) as libvirt hands it to
// the hook at "start begin": libvirt's quoting, a tap named in <target dev>, other NICs around it.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { readBounded, runLibvirtHook } from "../../src/app/libvirt-hook.js";
import type { HostReport } from "../../src/detect/types.js";
import type { CommandRunner } from "../../src/host/commands.js";
import { RootedTargetFs } from "../../src/host/target.js";
import { DeployError, deployVm } from "../../src/vm/deploy.js";
import { renderDomainXml } from "../../src/vm/domain-xml.js";
import { type BridgeFacts, decideVlanHook, taggedPorts } from "../../src/vm/vlan-hook.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const rendered = renderDomainXml({
  name: "web1",
  domainType: "qemu",
  vcpus: 1,
  memoryMiB: 256,
  disk: { path: "/var/lib/kvmstrap/vms/web1.qcow2", format: "qcow2" },
  nics: [
    { kind: "network", network: "default", mac: "52:54:00:aa:00:01" },
    { kind: "bridge", bridge: "br1", vlan: 30, mac: "52:54:00:AA:00:02" },
    { kind: "bridge", bridge: "br1", mac: "52:54:00:aa:00:03" },
    { kind: "bridge", bridge: "br2", vlan: 40, mac: "52:54:00:aa:00:04" },
  ],
  serialLog: "/tmp/web1.log",
  specHash: "abc",
});

/** What libvirt hands the hook: single quotes, and each NIC's tap in <target dev> in order. */
function asLibvirtGives(xml: string): string {
  let n = 0;
  return xml
    .replace(/"/g, "'")
    .replace(/<\/interface>/g, () => `  <target dev='vnet${n++}'/>\n    </interface>`);
}

const on: BridgeFacts = { filtering: "on", defaultPvid: 1 };
const START = ["web1", "start", "begin", "-"];

describe("the VLAN in kvmstrap's metadata", () => {
  it("is rendered per tagged bridge NIC, keyed by its MAC (lower case), next to the spec hash", () => {
    expect(rendered).toContain(
      [
        '    <kvmstrap:vm xmlns:kvmstrap="urn:kvmstrap:vm:1" spec="abc">',
        '      <kvmstrap:port mac="52:54:00:aa:00:02" vlan="30"/>',
        '      <kvmstrap:port mac="52:54:00:aa:00:04" vlan="40"/>',
        "    </kvmstrap:vm>",
      ].join("\n"),
    );
  });

  it("is found again in the live XML, each port with its tap and bridge", () => {
    expect(taggedPorts(asLibvirtGives(rendered))).toEqual([
      { mac: "52:54:00:aa:00:02", vlan: 30, tap: "vnet1", bridge: "br1" },
      { mac: "52:54:00:aa:00:04", vlan: 40, tap: "vnet3", bridge: "br2" },
    ]);
  });

  it("under another namespace prefix is still kvmstrap's; a foreign namespace's ports are not", () => {
    const other = asLibvirtGives(rendered).replace(/(?<=<\/?|xmlns:)kvmstrap(?=:|=)/g, "k");
    expect(taggedPorts(other).map((p) => p.tap)).toEqual(["vnet1", "vnet3"]);
    expect(taggedPorts(other.replace("urn:kvmstrap:vm:1", "urn:someone:else"))).toEqual([]);
  });
});

describe("decideVlanHook", () => {
  const ports = taggedPorts(asLibvirtGives(rendered));
  const facts = new Map([
    ["br1", on],
    ["br2", on],
  ]);

  it("at start: the default VLAN off each tagged tap, its own VLAN on as pvid untagged; untagged NICs untouched", () => {
    expect(decideVlanHook(START, ports, facts)).toEqual({
      kind: "run",
      commands: [
        ["bridge", "vlan", "del", "dev", "vnet1", "vid", "1"],
        ["bridge", "vlan", "add", "dev", "vnet1", "vid", "30", "pvid", "untagged"],
        ["bridge", "vlan", "del", "dev", "vnet3", "vid", "1"],
        ["bridge", "vlan", "add", "dev", "vnet3", "vid", "40", "pvid", "untagged"],
      ],
      notes: ["vnet1 on br1: VLAN 30 untagged (pvid)", "vnet3 on br2: VLAN 40 untagged (pvid)"],
    });
  });

  it("keeps a default VLAN that is the port's own, and deletes none where the bridge has none (0)", () => {
    const f = new Map([
      ["br1", { filtering: "on", defaultPvid: 30 } as const],
      ["br2", { filtering: "on", defaultPvid: 0 } as const],
    ]);
    const d = decideVlanHook(START, ports, f);
    expect(d.kind === "run" && d.commands.filter((c) => c[2] === "del")).toEqual([]);
  });

  it("refuses the start where the kernel has no bridge VLAN filtering or the bridge has it off", () => {
    const absent = decideVlanHook(START, ports, new Map([["br1", { filtering: "absent", defaultPvid: 1 }]]));
    expect(absent).toEqual({
      kind: "refuse",
      reason:
        "VM web1: the NIC 52:54:00:aa:00:02 is meant for VLAN 30 on bridge br1, but this kernel has no bridge VLAN filtering: the VM would run untagged, not isolated",
    });
    const off = decideVlanHook(START, ports, new Map([["br1", { filtering: "off", defaultPvid: 1 }]]));
    expect(off.kind === "refuse" && off.reason).toMatch(/bridge br1, but the bridge has VLAN filtering off/);
    const missing = decideVlanHook(START, ports, new Map([["br1", on]]));
    expect(missing.kind === "refuse" && missing.reason).toMatch(/bridge br2 does not exist/);
  });

  it("refuses a tagged NIC without a tap, or one no longer on a Linux bridge (moved to OVS)", () => {
    const noTap = taggedPorts(rendered); // the inactive XML: no <target dev>
    expect(decideVlanHook(START, noTap, facts)).toMatchObject({
      kind: "refuse",
      reason: expect.stringMatching(/libvirt names no tap/),
    });
    const ovs = asLibvirtGives(rendered).replace(
      "<source bridge='br1'/>",
      "<source bridge='br1'/><virtualport type='openvswitch'/>",
    );
    expect(decideVlanHook(START, taggedPorts(ovs), facts)).toMatchObject({
      kind: "refuse",
      reason: expect.stringMatching(/not on a Linux bridge/),
    });
  });

  it("does nothing on any other operation, or for a domain without kvmstrap VLANs", () => {
    for (const op of [
      ["web1", "prepare", "begin", "-"],
      ["web1", "started", "begin", "-"],
      ["web1", "stopped", "end", "-"],
      ["web1", "migrate", "begin", "-"],
    ])
      expect(decideVlanHook(op, ports, facts).kind).toBe("nothing");
    expect(decideVlanHook(START, [], facts)).toEqual({ kind: "nothing", why: "no VLAN on a Linux bridge" });
  });
});

describe("runLibvirtHook (sysfs from a directory, commands recorded)", () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const sysWith = async (files: Record<string, string>) => {
    const root = await mkdtemp(path.join(tmpdir(), `kvmstrap-vlanhook-${process.pid}-`));
    dirs.push(root);
    for (const [f, v] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(root, f)), { recursive: true });
      await writeFile(path.join(root, f), v);
    }
    return root;
  };
  const recording = (exitCode = 0) => {
    const ran: string[][] = [];
    const runner: CommandRunner = {
      run: async (file, args) => {
        ran.push([file, ...args]);
        return {
          exitCode,
          stdout: "",
          stderr: exitCode ? "RTNETLINK answers: Operation not supported" : "",
          timedOut: false,
        };
      },
      which: async () => null,
    };
    return { ran, runner };
  };
  // One tagged NIC on br1 (as vnet1), next to a NAT one.
  const xml = asLibvirtGives(
    renderDomainXml({
      name: "web1",
      domainType: "qemu",
      vcpus: 1,
      memoryMiB: 256,
      disk: { path: "/var/lib/kvmstrap/vms/web1.qcow2", format: "qcow2" },
      nics: [
        { kind: "network", network: "default", mac: "52:54:00:aa:00:01" },
        { kind: "bridge", bridge: "br1", vlan: 30, mac: "52:54:00:aa:00:02" },
      ],
      serialLog: "/tmp/web1.log",
    }),
  );

  it("reads the bridge's sysfs and runs the commands for its taps", async () => {
    const sysRoot = await sysWith({
      "sys/class/net/br1/bridge/forward_delay": "1500\n",
      "sys/class/net/br1/bridge/vlan_filtering": "1\n",
      "sys/class/net/br1/bridge/default_pvid": "1\n",
    });
    const { ran, runner } = recording();
    const r = await runLibvirtHook({
      driver: "qemu",
      args: START,
      stdin: Readable.from([xml]),
      sysRoot,
      runner,
    });
    expect(r.failed).toBeUndefined();
    expect(ran).toEqual([
      ["bridge", "vlan", "del", "dev", "vnet1", "vid", "1"],
      ["bridge", "vlan", "add", "dev", "vnet1", "vid", "30", "pvid", "untagged"],
    ]);
  });

  it("refuses without running anything where sysfs has no vlan_filtering; says which command failed", async () => {
    const none = await sysWith({ "sys/class/net/br1/bridge/forward_delay": "1500\n" });
    const { ran, runner } = recording();
    const r = await runLibvirtHook({
      driver: "qemu",
      args: START,
      stdin: Readable.from([xml]),
      sysRoot: none,
      runner,
    });
    expect(r.decision.kind).toBe("refuse");
    expect(ran).toEqual([]);
    const on1 = await sysWith({
      "sys/class/net/br1/bridge/forward_delay": "1500\n",
      "sys/class/net/br1/bridge/vlan_filtering": "1\n",
    });
    const failing = recording(255);
    const f = await runLibvirtHook({
      driver: "qemu",
      args: START,
      stdin: Readable.from([xml]),
      sysRoot: on1,
      runner: failing.runner,
    });
    expect(f.failed).toBe("bridge vlan del dev vnet1 vid 1: RTNETLINK answers: Operation not supported");
  });

  it("bounds stdin by size and by time, and refuses XML that does not parse", async () => {
    await expect(readBounded(Readable.from([Buffer.alloc(2048)]), 1024, 1000)).rejects.toThrow(
      /larger than 1024 bytes/,
    );
    const never = new Readable({ read() {} });
    await expect(readBounded(never, 1024, 50)).rejects.toThrow(/did not end within 0.05 s/);
    await expect(
      runLibvirtHook({ driver: "qemu", args: START, stdin: Readable.from(["<domain><metadata>"]) }),
    ).rejects.toThrow(/does not parse/);
    // The parser alone would read a truncated document; the hook names the line that is wrong.
    expect(() => taggedPorts("<domain>\n  <metadata>\n</domain>")).toThrow(
      /^line 3: Expected closing tag 'metadata' \(opened in line 2, col 3\) instead of closing tag 'domain'\.$/,
    );
    await expect(runLibvirtHook({ driver: "lxc", args: START, stdin: Readable.from([""]) })).rejects.toThrow(
      /only qemu/,
    );
  });
});

describe("vm deploy of a VM with a VLAN on a Linux bridge", () => {
  it("is refused while kvmstrap's qemu hook is not installed (the VM would run untagged)", async () => {
    const root = await mkdtemp(path.join(tmpdir(), `kvmstrap-vlanhook-deploy-${process.pid}-`));
    try {
      await mkdir(path.join(root, "net/br1/bridge"), { recursive: true });
      const e = await deployVm(
        {
          name: "web1",
          image: path.join(root, "base.qcow2"),
          vcpus: 1,
          memoryMiB: 256,
          diskGiB: 1,
          user: { name: "debian", sshKeys: [], sudo: true },
          nics: [{ kind: "bridge", bridge: "br1", vlan: 30 }],
        },
        {
          libvirt: new FakeLibvirt(),
          report: {} as HostReport,
          dir: path.join(root, "vms"),
          stateDir: path.join(root, "state"),
          sysClassNet: path.join(root, "net"),
          target: new RootedTargetFs(root),
        },
      ).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(DeployError);
      expect((e as DeployError).message).toBe(
        "VLAN 30 on bridge br1 needs kvmstrap's qemu hook (/etc/libvirt/hooks/qemu.d/kvmstrap-vlan), which is not installed: the VM would run untagged",
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
