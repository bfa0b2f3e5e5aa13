// kvmstrap verify on snapshots of real machines (--root): partial trees, so what they did not
// capture (/sys/module, the live-only checks) is "unknown", never a failure; the KVM module asked for
// follows each machine's CPU vendor; and a promise the machine breaks (a device on its own driver
// promised to vfio-pci, a bridge it does not have) fails by name.
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { verifyResultSchema } from "../../src/app/verify-result.js";
import { verifyCommand } from "../../src/cli/verify-command.js";
import { captureCli } from "../helpers/capture-cli.js";
import { HOSTS, SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { configuredPlan, journalRun } from "./verify-fixture.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A PCI function of the snapshot bound to a driver other than vfio-pci, with that driver. */
function boundDevice(root: string): { address: string; driver: string } | null {
  const dir = path.join(root, "sys/bus/pci/devices");
  for (const address of existsSync(dir) ? readdirSync(dir).sort() : []) {
    try {
      const driver = path.basename(readlinkSync(path.join(dir, address, "driver")));
      if (driver !== "vfio-pci") return { address, driver };
    } catch {
      /* no driver captured */
    }
  }
  return null;
}

describe.skipIf(!sharedHostsAvailable)(
  "kvmstrap verify on the shared real-machine snapshots",
  { timeout: 60_000 },
  () => {
    for (const host of HOSTS) {
      it(`${host}: unknowns are not failures, the vendor module follows its CPU, broken promises fail by name`, async () => {
        const root = sharedHostRoot(host);
        const stateDir = mkdtempSync(path.join(tmpdir(), `kvmstrap-verify-${host}-`));
        dirs.push(stateDir);
        const base = configuredPlan("GenuineIntel");
        const modulesOnly = {
          ...base,
          actions: base.actions.slice(0, 1),
          expect: { cmdlineParams: [], vfio: [] },
        };
        await journalRun(stateDir, modulesOnly);
        const ok = await captureCli(() => verifyCommand(["--root", root, "--state-dir", stateDir, "--json"]));
        expect(ok.code, ok.stderr).toBe(0);
        const result = verifyResultSchema.parse(JSON.parse(ok.stdout));
        const ids = result.checks.map((c) => c.id);
        const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(
          readFileSync(path.join(root, "proc/cpuinfo"), "utf8"),
        )?.[1];
        const amd = vendor === "AuthenticAMD";
        expect(ids).toContain(amd ? "module.kvm_amd" : "module.kvm_intel");
        expect(ids).not.toContain(amd ? "module.kvm_intel" : "module.kvm_amd");
        expect(result.checks.find((c) => c.id === "kvm.functional")?.status).toBe("unknown");

        const device = boundDevice(root);
        const broken = {
          ...modulesOnly,
          actions: base.actions.slice(2), // the netplan file: bridge br0
          expect: { cmdlineParams: [], vfio: device ? [device.address] : [] },
        };
        await journalRun(stateDir, broken);
        const bad = await captureCli(() =>
          verifyCommand(["--root", root, "--state-dir", stateDir, "--json"]),
        );
        expect(bad.code).toBe(1);
        const failed = verifyResultSchema.parse(JSON.parse(bad.stdout));
        expect(failed.failed).toContain("bridge.br0");
        if (device) {
          expect(failed.checks.find((c) => c.id === `vfio.${device.address}`)).toMatchObject({
            status: "fail",
            found: `bound to ${device.driver}`,
          });
        }
      });
    }
  },
);
if (!sharedHostsAvailable) it.skip(SKIP_REASON, () => {});
