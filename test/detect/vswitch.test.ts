// detectVswitch on trees built for each case: the kernel's build config (/boot or /proc/config.gz,
// whose size procfs does not report), the module lists, a loaded module, a live bridge's sysfs.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { detectVswitch } from "../../src/detect/vswitch.js";
import { RootedHostFs } from "../../src/host/fs.js";

const REL = "6.1.0-28-amd64";
let roots: string[] = [];
afterEach(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
  roots = [];
});

function tree(files: Record<string, string | Buffer>) {
  const root = mkdtempSync(path.join(tmpdir(), `kvmstrap-vswitch-${process.pid}-`));
  roots.push(root);
  for (const [p, content] of Object.entries({ "/proc/sys/kernel/osrelease": `${REL}\n`, ...files })) {
    mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    if (p.endsWith("/")) mkdirSync(path.join(root, p), { recursive: true });
    else writeFileSync(path.join(root, p), content);
  }
  return detectVswitch({ fs: new RootedHostFs(root), warnings: [] });
}

describe("detectVswitch", () => {
  it("a kernel without 802.1Q (this CI kernel's config): no module, no bridge VLAN filtering", async () => {
    const config = "CONFIG_BRIDGE=y\n# CONFIG_VLAN_8021Q is not set\n# CONFIG_OPENVSWITCH is not set\n";
    expect(await tree({ "/proc/config.gz": gzipSync(config) })).toEqual({
      ovsModule: false,
      bridgeVlanFiltering: false,
      sources: { ovsModule: "/proc/config.gz", bridgeVlanFiltering: "/proc/config.gz" },
    });
  });

  it("Debian's kernel: the module installed for this release, filtering built in", async () => {
    const r = await tree({
      [`/boot/config-${REL}`]: "CONFIG_BRIDGE=m\nCONFIG_BRIDGE_VLAN_FILTERING=y\nCONFIG_OPENVSWITCH=m\n",
      [`/lib/modules/${REL}/modules.dep`]: "kernel/net/openvswitch/openvswitch.ko: kernel/net/nsh/nsh.ko\n",
    });
    expect(r).toMatchObject({ ovsModule: true, bridgeVlanFiltering: true });
    expect(r.sources.ovsModule).toBe(`/lib/modules/${REL}`);
  });

  it("a config that builds the module while this release's module lists lack it: not available", async () => {
    const r = await tree({
      [`/boot/config-${REL}`]: "CONFIG_BRIDGE=y\nCONFIG_OPENVSWITCH=m\n",
      [`/lib/modules/${REL}/modules.dep`]: "kernel/net/bridge/bridge.ko:\n",
    });
    expect(r.ovsModule).toBe(false);
  });

  it("a loaded module says so whatever the config", async () => {
    expect((await tree({ "/sys/module/openvswitch/": "" })).ovsModule).toBe(true);
  });

  it("no config: a live bridge's sysfs tells filtering; nothing at all is unknown", async () => {
    expect((await tree({ "/sys/class/net/br0/bridge/vlan_filtering": "0\n" })).bridgeVlanFiltering).toBe(
      true,
    );
    expect((await tree({ "/sys/class/net/br0/bridge/stp_state": "0\n" })).bridgeVlanFiltering).toBe(false);
    expect(await tree({})).toEqual({ ovsModule: null, bridgeVlanFiltering: null, sources: {} });
  });

  it("reads all of a config.gz whose size is not a multiple of the chunk (the key is at its very end)", async () => {
    const noise = `# ${randomBytes(9000).toString("base64")}\n`;
    const gz = gzipSync(`CONFIG_BRIDGE=y\n${noise}CONFIG_BRIDGE_VLAN_FILTERING=y\n`);
    expect(gz.length % 4096).not.toBe(0);
    expect(gz.length).toBeGreaterThan(8192);
    expect((await tree({ "/proc/config.gz": gz })).bridgeVlanFiltering).toBe(true);
  });
});
