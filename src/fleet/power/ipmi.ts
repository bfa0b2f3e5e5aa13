// Power through a BMC's IPMI over LAN: ipmitool's `chassis power on|off|cycle|status`, run by the
// project's command runner. The password goes to ipmitool in its environment (IPMI_PASSWORD, read by
// -E), never on the command line, where any user's `ps` would see it.
import { type CommandRunner, ExecaRunner } from "../../host/commands.js";
import { PowerError, type PowerPort, type PowerState } from "./port.js";

export interface IpmiTarget {
  host: string;
  port?: number;
  user: string;
  password: string;
  /** lanplus (IPMI 2.0, the default) or lan (1.5, old BMCs). */
  interface?: "lanplus" | "lan";
}

export class IpmiPower implements PowerPort {
  private readonly runner: CommandRunner;
  private readonly timeoutMs: number;

  constructor(
    private readonly target: IpmiTarget,
    o: { runner?: CommandRunner; timeoutMs?: number; ipmitool?: string } = {},
  ) {
    this.runner = o.runner ?? new ExecaRunner();
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.ipmitool = o.ipmitool ?? "ipmitool";
  }

  private readonly ipmitool: string;

  /** The command line for one `chassis power` verb (what the tests hold it to). */
  argv(verb: "on" | "off" | "cycle" | "status"): string[] {
    const t = this.target;
    return [
      "-I",
      t.interface ?? "lanplus",
      "-H",
      t.host,
      ...(t.port ? ["-p", String(t.port)] : []),
      "-U",
      t.user,
      "-E",
      "chassis",
      "power",
      verb,
    ];
  }

  private async power(verb: "on" | "off" | "cycle" | "status"): Promise<string> {
    const r = await this.runner
      .run(this.ipmitool, this.argv(verb), {
        timeoutMs: this.timeoutMs,
        env: { IPMI_PASSWORD: this.target.password },
      })
      .catch((e: Error) => {
        throw new PowerError("ipmi", this.target.host, `could not run ipmitool: ${e.message}`);
      });
    if (r.timedOut) throw new PowerError("ipmi", this.target.host, `chassis power ${verb} timed out`);
    // The runner reports a program it could not start (ENOENT) as a result with no exit code.
    if (r.exitCode === undefined || r.exitCode === null)
      throw new PowerError("ipmi", this.target.host, `could not run ${this.ipmitool} (package ipmitool)`);
    if (r.exitCode !== 0) {
      const why = (r.stderr || r.stdout).trim().split("\n")[0] || `exit ${r.exitCode}`;
      throw new PowerError("ipmi", this.target.host, `chassis power ${verb} failed: ${why}`);
    }
    return r.stdout;
  }

  async status(): Promise<PowerState> {
    const m = /Chassis Power is (on|off)/i.exec(await this.power("status"));
    return m ? ((m[1] as string).toLowerCase() as PowerState) : "unknown";
  }

  async on(): Promise<void> {
    await this.power("on");
  }

  async off(): Promise<void> {
    await this.power("off");
  }

  /** BMCs refuse `power cycle` on a chassis that is off: that one is just turned on. */
  async cycle(): Promise<void> {
    if ((await this.status()) === "off") await this.power("on");
    else await this.power("cycle");
  }
}
