// `kvmstrap vm deploy --ovs`: a NIC on an Open vSwitch bridge from a flag, parsed into the answer's
// { ovs, vlan | trunk } entry; a malformed value is a usage error (exit 2) naming the flag.
import { describe, expect, it } from "vitest";
import { vmCommand } from "../../src/cli/vm-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const cli = (args: string[]) => captureCli(() => vmCommand(args));
const deploy = (ovs: string) => cli(["deploy", "--name", "a", "--image", "/nonexistent.qcow2", "--ovs", ovs]);

describe("vm deploy --ovs", () => {
  it.each(["br0:tag=5", "br0:vlan=", "br0:trunk=a,b", ":vlan=10"])("refuses %s with exit 2", async (v) => {
    const r = await deploy(v);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--ovs takes BR, BR:vlan=N or BR:trunk=N,M, not "${v}"`);
  });
});
