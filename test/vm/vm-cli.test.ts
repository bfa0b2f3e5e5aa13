// `kvmstrap vm` in process: help, usage errors (exit 2), and an unreachable libvirtd (exit 1, one
// clear line). Deploys through a real libvirtd are the e2e tier's (test/e2e/deploy.e2e.test.ts).
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { VM_HELP, vmCommand } from "../../src/cli/vm-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const hasVirsh = spawnSync("virsh", ["--version"]).status === 0;
const DEAD = "qemu+unix:///system?socket=/nonexistent/kvmstrap-test-sock";

const cli = (args: string[]) => captureCli(() => vmCommand(args));

describe("kvmstrap vm", () => {
  it("prints help; no subcommand is a usage error", async () => {
    expect(await cli(["--help"])).toMatchObject({ code: 0, stdout: VM_HELP });
    expect((await cli([])).code).toBe(2);
  });

  it("usage errors exit 2 with one line", async () => {
    const r = await cli(["deploy", "--image", "debian-12"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/vm deploy needs --name N/);
    expect((await cli(["deploy", "--name", "a", "--image", "b", "--vcpus", "zero"])).stderr).toMatch(
      /--vcpus must be a positive number/,
    );
    expect((await cli(["show"])).stderr).toMatch(/vm show needs a VM NAME/);
    expect((await cli(["frobnicate"])).stderr).toMatch(/unknown vm subcommand "frobnicate"/);
  });

  it.skipIf(!hasVirsh)("libvirtd not running: exit 1 and says so", async () => {
    const r = await cli(["list", "--connect", DEAD]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^kvmstrap: libvirtd is not running or not reachable at qemu\+unix/);
    expect(r.stderr).toMatch(/fix: start libvirtd/);
    const d = await cli(["deploy", "--name", "web1", "--image", "/nonexistent.qcow2", "--connect", DEAD]);
    expect(d.code).toBe(1);
    expect(d.stderr).toMatch(/libvirtd is not running or not reachable/);
  });
});
