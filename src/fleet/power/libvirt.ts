// Power through libvirt: a node that is a libvirt domain (what the rollout tests boot). It goes
// through the project's libvirt port (src/vm/libvirt.ts, virsh run by the command runner), so the
// same adapter, errors and timeouts apply as for VM deploys.
import type { Libvirt } from "../../vm/libvirt.js";
import { PowerError, type PowerPort, type PowerState } from "./port.js";

export class LibvirtPower implements PowerPort {
  constructor(
    private readonly libvirt: Libvirt,
    readonly domain: string,
  ) {}

  private async guard<T>(what: string, f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      throw new PowerError("libvirt", this.domain, `${what}: ${(e as Error).message}`);
    }
  }

  async status(): Promise<PowerState> {
    const s = await this.guard("state", () => this.libvirt.domainState(this.domain));
    if (s === "running" || s === "paused" || s === "in shutdown" || s === "pmsuspended") return "on";
    if (s === "shut off" || s === "crashed") return "off";
    return "unknown";
  }

  async on(): Promise<void> {
    if ((await this.status()) === "on") return;
    await this.guard("start", () => this.libvirt.start(this.domain));
  }

  async off(): Promise<void> {
    if ((await this.status()) === "off") return;
    await this.guard("destroy", () => this.libvirt.destroy(this.domain));
  }

  async cycle(): Promise<void> {
    await this.off();
    await this.guard("start", () => this.libvirt.start(this.domain));
  }
}
