// The `virsh domstats` parser on output captured from the e2e tier's libvirtd (fixtures/domstats,
// INDEX.md says what made each file), and the reader's bounds: a timeout, an output size cap and
// virsh's errors, through the CommandRunner port it ships with.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { CommandOptions, CommandResult, CommandRunner } from "../../src/host/commands.js";
import { parseDomstats, readDomstats, statNumber } from "../../src/vm/domstats.js";
import { LibvirtError } from "../../src/vm/libvirt-error.js";

const captured = (f: string) => readFileSync(path.join(import.meta.dirname, "fixtures/domstats", f), "utf8");

/** Replays one result for `virsh domstats`, recording what it was asked. */
function replay(result: Partial<CommandResult>) {
  const calls: { args: readonly string[]; options: CommandOptions | undefined }[] = [];
  const runner: CommandRunner = {
    async run(_file, args, options) {
      calls.push({ args, options });
      return { exitCode: 0, stdout: "", stderr: "", timedOut: false, ...result };
    },
    which: async () => "/usr/bin/virsh",
  };
  return { runner, calls };
}

describe("parseDomstats on captured output", () => {
  it("reads every domain of a whole run, running and shut off", () => {
    const domains = parseDomstats(captured("three-domains.txt"));
    expect(domains.map((d) => [d.name, d.state])).toEqual([
      ["m1", "running"],
      ["m0", "running"],
      ["m2", "shutoff"],
    ]);
  });

  it("a running domain with two disks: both disks, its NIC, its vCPU and balloon", () => {
    const [m1] = parseDomstats(captured("running-two-disks.txt"));
    if (!m1) throw new Error("no domain parsed");
    expect(m1.blocks.map((b) => [b.name, statNumber(b.fields, "capacity")])).toEqual([
      ["vda", 1048576],
      ["vdb", 1048576],
    ]);
    // SeaBIOS read the boot sector from vda only.
    expect(statNumber(m1.blocks[0]?.fields ?? new Map(), "rd.bytes")).toBe(512);
    expect(statNumber(m1.blocks[1]?.fields ?? new Map(), "rd.reqs")).toBe(0);
    expect(m1.nets.map((n) => n.name)).toEqual(["vnet1"]);
    expect(statNumber(m1.nets[0]?.fields ?? new Map(), "rx.pkts")).toBe(1);
    expect(m1.vcpus.map((v) => v.index)).toEqual([0]);
    expect(statNumber(m1.vcpus[0]?.fields ?? new Map(), "time")).toBe(160_000_000);
    expect(statNumber(m1.fields, "cpu.time")).toBe(340_000_000);
    expect(statNumber(m1.fields, "balloon.current")).toBe(32768);
    // A string-valued field is kept as text and is no number.
    expect(m1.fields.get("dirtyrate.calc_mode")).toBe("page-sampling");
    expect(statNumber(m1.fields, "dirtyrate.calc_mode")).toBeNull();
  });

  it("a shut-off domain: its state and disk, and nothing for what it lacks", () => {
    const [m2] = parseDomstats(captured("shut-off.txt"));
    expect(m2?.state).toBe("shutoff");
    expect(m2?.nets).toEqual([]);
    expect(m2?.vcpus).toEqual([]);
    expect(m2?.blocks.map((b) => b.name)).toEqual(["vda"]);
    expect(statNumber(m2?.fields ?? new Map(), "balloon.rss")).toBeNull();
  });

  it("tolerates what it does not know: stray lines, an unknown state, fields before any domain", () => {
    const domains = parseDomstats(
      "  cpu.time=1\nwarning: something\nDomain: 'a b'\n  state.state=42\n  garbage\n  block.count=1\n  block.0.rd.bytes=7\n\n",
    );
    expect(domains).toHaveLength(1);
    expect(domains[0]?.name).toBe("a b");
    expect(domains[0]?.state).toBeNull();
    // A device without its name still counts, by index.
    expect(domains[0]?.blocks).toEqual([{ index: 0, name: null, fields: new Map([["rd.bytes", "7"]]) }]);
    expect(parseDomstats("")).toEqual([]);
  });
});

describe("readDomstats", () => {
  it("runs one virsh domstats of the groups it shows on the URI, with a timeout and an output bound", async () => {
    const { runner, calls } = replay({ stdout: captured("three-domains.txt") });
    const domains = await readDomstats(runner, "qemu:///system", { timeoutMs: 1234, maxBytes: 1 << 20 });
    expect(domains).toHaveLength(3);
    expect(calls).toEqual([
      {
        args: [
          "-c",
          "qemu:///system",
          "domstats",
          "--state",
          "--cpu-total",
          "--balloon",
          "--interface",
          "--block",
        ],
        options: { timeoutMs: 1234, maxBytes: 1 << 20 },
      },
    ]);
  });

  it("asks for the vCPU group only when told to", async () => {
    const { runner, calls } = replay({ stdout: captured("three-domains.txt") });
    await readDomstats(runner, "qemu:///system", { vcpu: true });
    expect(calls[0]?.args.slice(3)).toEqual([
      "--state",
      "--cpu-total",
      "--balloon",
      "--interface",
      "--block",
      "--vcpu",
    ]);
  });

  it("a timeout, an overflow and output past the bound are errors that say so", async () => {
    await expect(readDomstats(replay({ timedOut: true, exitCode: undefined }).runner, "u")).rejects.toThrow(
      /no answer within 10000 ms/,
    );
    await expect(readDomstats(replay({ overflowed: true }).runner, "u", { maxBytes: 10 })).rejects.toThrow(
      /more than 10 bytes/,
    );
    // A runner that does not enforce the bound is held to it all the same.
    await expect(
      readDomstats(replay({ stdout: captured("three-domains.txt") }).runner, "u", { maxBytes: 100 }),
    ).rejects.toThrow(/more than 100 bytes/);
  });

  it("virsh's own error is classified (a libvirtd that is down is a connect error)", async () => {
    const stderr =
      "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/x': No such file or directory\n";
    const e = await readDomstats(replay({ exitCode: 1, stderr }).runner, "u").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as LibvirtError).code).toBe("connect");
  });
});
