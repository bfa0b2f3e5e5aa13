// The libvirt power driver against a real libvirtd: the test-owned one of the VM tier
// (test/e2e/libvirtd.ts, in its own namespaces, never the host's), with a diskless domain of 64 MiB
// under TCG that PXE-boots into nothing (SeaBIOS finds no NIC and waits). The driver turns it on,
// sees it on, cycles it, turns it off, and a second on or off of a node already there is a no-op.
// Skipped, visibly, where libvirtd, qemu or root are missing.
import { existsSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LibvirtPower } from "../../../src/fleet/power/libvirt.js";
import { PowerError } from "../../../src/fleet/power/port.js";
import { VirshLibvirt } from "../../../src/vm/virsh-libvirt.js";
import { startTestLibvirtd, type TestLibvirtd } from "../../e2e/libvirtd.js";

const QEMU = "/usr/bin/qemu-system-x86_64";
const missing = [
  process.getuid?.() !== 0 && "root (the private libvirtd runs in its own namespaces)",
  !existsSync("/usr/sbin/libvirtd") && "libvirtd (libvirt-daemon-system)",
  !existsSync(QEMU) && QEMU,
].filter(Boolean);

const name = `kvst-power-${process.pid}`;
const xml = `<domain type="qemu">
  <name>${name}</name>
  <memory unit="MiB">64</memory>
  <vcpu>1</vcpu>
  <os><type arch="x86_64" machine="pc">hvm</type><boot dev="network"/></os>
  <devices><emulator>${QEMU}</emulator></devices>
</domain>`;

describe.skipIf(missing.length > 0)("libvirt power on a real (test-owned) libvirtd", () => {
  let daemon: TestLibvirtd | undefined;
  let lv: VirshLibvirt;
  beforeAll(async () => {
    daemon = await startTestLibvirtd();
    lv = new VirshLibvirt(daemon.uri);
    await lv.defineDomain(xml);
  });
  afterAll(async () => {
    await daemon?.stop();
  });

  it("turns a domain on, cycles it, turns it off; on and off are idempotent", async () => {
    const p = new LibvirtPower(lv, name);
    expect(await p.status()).toBe("off");
    await p.on();
    expect(await p.status()).toBe("on");
    expect(await lv.domainState(name)).toBe("running");
    await p.on();
    await p.cycle();
    expect(await p.status()).toBe("on");
    await p.off();
    expect(await lv.domainState(name)).toBe("shut off");
    await p.off();
    await p.cycle(); // from off: on
    expect(await p.status()).toBe("on");
    await p.off();
  });

  it("names the domain and libvirt's reason when there is no such domain", async () => {
    const err = await new LibvirtPower(lv, "no-such-node").on().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PowerError);
    expect((err as Error).message).toBe("libvirt no-such-node: state: failed to get domain 'no-such-node'");
  });
});

if (missing.length > 0)
  describe("libvirt power on a real (test-owned) libvirtd", () => {
    it.skip(`skipped: missing ${missing.join(", ")}`, () => {});
  });
