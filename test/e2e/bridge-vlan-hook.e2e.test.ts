// A VM's VLAN on a Linux bridge, kept by kvmstrap's qemu hook, on a real libvirtd: the test libvirtd
// gets the hook script the plan installs (vlanHookScript, exec'ing the built CLI) in ITS
// /etc/libvirt/hooks/qemu.d/, next to an "operator's" own hooks/qemu that logs its calls (both must
// run: kvmstrap never takes that file over). The domain is kvmstrap's rendering (renderDomainXml, the
// VLAN in its metadata) of the tiny boot-sector guest, started paused: the hook acts before qemu
// runs, so no guest needs to boot. libvirtd runs the hook at start with the domain XML on stdin:
// - a domain without a VLAN starts (the hook does nothing for it, and does not block it);
// - a domain with a VLAN, on a bridge without VLAN filtering (this kernel has none), is refused by
//   the hook with its reason, as libvirtd reports it: a VM never runs on an untagged port it was
//   meant to be isolated from;
// - where the kernel has filtering (vlan_filtering in the bridge's sysfs), the bridge is made
//   VLAN-aware and `bridge vlan show` lists the VLAN on the VM's tap as pvid untagged, without VLAN 1.
//   Skipped, with its reason, on a kernel without it.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testVmDisk } from "../../src/app/verify-vm-boot.js";
import { vlanHookScript } from "../../src/plan/vlan-hook-plan.js";
import { renderDomainXml, type VmNic } from "../../src/vm/domain-xml.js";
import { startTestLibvirtd, type TestLibvirtd } from "./libvirtd.js";

const BIN = path.resolve(import.meta.dirname, "../../bin/kvmstrap.js");
const sfx = (process.pid % 0xffff).toString(16);
const BRIDGE = `kvh${sfx}`;
const MAC = "52:54:00:4b:56:1e";
const VLAN = 30;

let daemon: TestLibvirtd | undefined;
let work = "";
let operatorLog = "";
let filtering = false;
const t0 = Date.now();

const virsh = (...args: string[]) =>
  execa("virsh", ["-c", (daemon as TestLibvirtd).uri, ...args], {
    reject: false,
    env: { LC_ALL: "C" },
    timeout: 60_000,
  });
const ns = (file: string, ...args: string[]) => (daemon as TestLibvirtd).nsExec(file, args);

async function define(name: string, nic: VmNic): Promise<void> {
  const disk = path.join(work, `${name}.img`);
  await writeFile(disk, testVmDisk(sfx));
  const xml = renderDomainXml({
    name,
    domainType: "qemu",
    vcpus: 1,
    memoryMiB: 64,
    disk: { path: disk, format: "raw" },
    nics: [nic],
    serialLog: path.join(work, `${name}.log`),
    vhostNet: false,
    specHash: "e2e",
  });
  await writeFile(path.join(work, `${name}.xml`), xml);
  const r = await virsh("define", path.join(work, `${name}.xml`));
  expect(r.exitCode, r.stderr).toBe(0);
}

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), `kvmstrap-vlanhook-e2e-${process.pid}-`));
  operatorLog = path.join(work, "operator-hook.log");
  daemon = await startTestLibvirtd({
    hooks: {
      // An operator's own hook: it must keep running beside kvmstrap's.
      qemu: `#!/bin/sh\ncat >/dev/null\necho "$*" >>${operatorLog}\n`,
      "qemu.d/kvmstrap-vlan": vlanHookScript(`${process.execPath} ${BIN}`),
    },
  });
  await ns("ip", "link", "add", BRIDGE, "type", "bridge");
  await ns("ip", "link", "set", BRIDGE, "up");
  // Detected, not assumed: the attribute exists exactly where the kernel has bridge VLAN filtering.
  filtering = await ns("test", "-e", `/sys/class/net/${BRIDGE}/bridge/vlan_filtering`).then(
    () => true,
    () => false,
  );
}, 60_000);

afterAll(async () => {
  await daemon?.stop();
  if (work) await rm(work, { recursive: true, force: true });
  console.log(`bridge-vlan-hook e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
});

describe("kvmstrap's qemu hook on a test libvirtd", () => {
  it("a domain without a VLAN starts; the operator's own hook ran too", async () => {
    await define(`kvh-plain-${sfx}`, { kind: "bridge", bridge: BRIDGE, mac: "52:54:00:4b:56:1f" });
    const r = await virsh("start", "--paused", `kvh-plain-${sfx}`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await readFile(operatorLog, "utf8")).toContain(`kvh-plain-${sfx} start begin -`);
    await virsh("destroy", `kvh-plain-${sfx}`);
  });

  it("a domain with a VLAN on a bridge without VLAN filtering: the hook refuses the start, with its reason", async (ctx) => {
    if (filtering) ctx.skip("this kernel has bridge VLAN filtering: the next test covers it");
    const name = `kvh-vlan-${sfx}`;
    await define(name, { kind: "bridge", bridge: BRIDGE, vlan: VLAN, mac: MAC });
    const r = await virsh("start", "--paused", name);
    expect(r.exitCode).not.toBe(0);
    // libvirtd's error carries what the hook printed: it read the XML (the MAC and VLAN from the
    // metadata, the bridge from the live definition) and refused.
    expect(r.stderr).toContain(
      `kvmstrap: start refused: VM ${name}: the NIC ${MAC} is meant for VLAN ${VLAN} on bridge ${BRIDGE}, but this kernel has no bridge VLAN filtering`,
    );
    expect((await virsh("domstate", name)).stdout.trim()).toBe("shut off");
  });

  it("on a kernel with bridge VLAN filtering: the VM's tap carries its VLAN as pvid untagged, and not VLAN 1", async (ctx) => {
    if (!filtering)
      ctx.skip(
        `this kernel has no bridge VLAN filtering (no /sys/class/net/${BRIDGE}/bridge/vlan_filtering)`,
      );
    await ns("ip", "link", "set", BRIDGE, "type", "bridge", "vlan_filtering", "1");
    const name = `kvh-vlan-${sfx}`;
    await define(name, { kind: "bridge", bridge: BRIDGE, vlan: VLAN, mac: MAC });
    const r = await virsh("start", "--paused", name);
    expect(r.exitCode, r.stderr).toBe(0);
    const tap = (await virsh("domiflist", name)).stdout.match(/^\s*(\S+)\s+bridge\s/m)?.[1] ?? "";
    expect(tap).not.toBe("");
    const vlans = JSON.parse(await ns("bridge", "-j", "vlan", "show", "dev", tap)) as {
      vlans?: { vlan: number; flags?: string[] }[];
    }[];
    expect(vlans[0]?.vlans).toEqual([{ vlan: VLAN, flags: ["PVID", "Egress Untagged"] }]);
    await virsh("destroy", name);
  });
});
