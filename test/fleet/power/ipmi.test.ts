// The IPMI power driver against the command lines it produces. No BMC can exist here, so a runner
// records each ipmitool run (program, arguments, environment) and answers with what ipmitool prints
// (`Chassis Power is on`, `Chassis Power Control: Up/On`, its session error): the test holds the
// driver to ipmitool's documented flags (-I lanplus -H -U -E chassis power VERB) and to keeping
// the password out of the command line.
import { describe, expect, it } from "vitest";
import { IpmiPower } from "../../../src/fleet/power/ipmi.js";
import { PowerError } from "../../../src/fleet/power/port.js";
import type { CommandOptions, CommandResult, CommandRunner } from "../../../src/host/commands.js";

const SECRET = "s3cret-Pa55";

function recorder(answer: (verb: string) => Partial<CommandResult>) {
  const runs: { file: string; args: readonly string[]; options?: CommandOptions }[] = [];
  const runner: CommandRunner = {
    run: async (file, args, options) => {
      runs.push({ file, args, options });
      return { exitCode: 0, stdout: "", stderr: "", timedOut: false, ...answer(args[args.length - 1] ?? "") };
    },
    which: async () => "/usr/bin/ipmitool",
  };
  return { runs, runner };
}

const target = { host: "10.0.0.21", user: "admin", password: SECRET };

describe("IPMI power (ipmitool)", () => {
  it("runs chassis power VERB over lanplus, the password only in IPMI_PASSWORD (-E)", async () => {
    let state = "off";
    const { runs, runner } = recorder((verb) => {
      if (verb === "status") return { stdout: `Chassis Power is ${state}\n` };
      if (verb === "on") state = "on";
      return { stdout: `Chassis Power Control: ${verb === "on" ? "Up/On" : "Cycle"}\n` };
    });
    const p = new IpmiPower(target, { runner });
    expect(await p.status()).toBe("off");
    await p.on();
    expect(await p.status()).toBe("on");
    await p.cycle();
    expect(runs.map((r) => [r.file, ...r.args].join(" "))).toEqual([
      "ipmitool -I lanplus -H 10.0.0.21 -U admin -E chassis power status",
      "ipmitool -I lanplus -H 10.0.0.21 -U admin -E chassis power on",
      "ipmitool -I lanplus -H 10.0.0.21 -U admin -E chassis power status",
      "ipmitool -I lanplus -H 10.0.0.21 -U admin -E chassis power status",
      "ipmitool -I lanplus -H 10.0.0.21 -U admin -E chassis power cycle",
    ]);
    for (const r of runs) {
      expect(r.args.join(" ")).not.toContain(SECRET);
      expect(r.options?.env).toEqual({ IPMI_PASSWORD: SECRET });
    }
  });

  it("turns an off chassis on for a cycle (BMCs refuse power cycle when it is off), and takes a port and IPMI 1.5", async () => {
    const { runs, runner } = recorder((verb) =>
      verb === "status" ? { stdout: "Chassis Power is off\n" } : {},
    );
    await new IpmiPower({ ...target, port: 6230, interface: "lan" }, { runner }).cycle();
    expect(runs.map((r) => r.args.join(" "))).toEqual([
      "-I lan -H 10.0.0.21 -p 6230 -U admin -E chassis power status",
      "-I lan -H 10.0.0.21 -p 6230 -U admin -E chassis power on",
    ]);
  });

  it("fails with ipmitool's own reason and no password; a timeout says so", async () => {
    const { runner } = recorder(() => ({
      exitCode: 1,
      stderr: "Error: Unable to establish IPMI v2 / RMCP+ session\n",
    }));
    const err = await new IpmiPower(target, { runner }).on().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PowerError);
    expect((err as Error).message).toBe(
      "ipmi 10.0.0.21: chassis power on failed: Error: Unable to establish IPMI v2 / RMCP+ session",
    );
    expect((err as Error).message).not.toContain(SECRET);
    const slow = recorder(() => ({ exitCode: null as unknown as number, timedOut: true }));
    await expect(new IpmiPower(target, { runner: slow.runner }).status()).rejects.toThrow(
      "chassis power status timed out",
    );
  });
});
