// A power port double for the runner's tests (no BMC exists here): it records every call with its
// time, keeps each node's power state, and fails on demand for the nodes it is told to. It says
// "on" only to nodes it turned on.
import { PowerError, type PowerPort, type PowerState } from "../../../src/fleet/power/port.js";

export interface PowerCall {
  nodeId: number;
  domain: string;
  verb: "on" | "off" | "cycle" | "status";
  at: number;
}

export class RecordingPower {
  readonly calls: PowerCall[] = [];
  readonly state = new Map<number, PowerState>();
  /** Nodes whose next calls fail, with the BMC's reason. */
  readonly failing = new Map<number, string>();

  port = (nodeId: number, settings: unknown): PowerPort => {
    const domain = (settings as { domain?: string }).domain;
    if (!domain) throw new PowerError("libvirt", `node ${nodeId}`, "no domain in its power settings");
    const call = async (verb: PowerCall["verb"]) => {
      this.calls.push({ nodeId, domain, verb, at: Date.now() });
      const why = this.failing.get(nodeId);
      if (why) throw new PowerError("libvirt", domain, why);
    };
    return {
      on: async () => {
        await call("on");
        this.state.set(nodeId, "on");
      },
      off: async () => {
        await call("off");
        this.state.set(nodeId, "off");
      },
      cycle: async () => {
        await call("cycle");
        this.state.set(nodeId, "on");
      },
      status: async () => {
        await call("status");
        return this.state.get(nodeId) ?? "off";
      },
    };
  };

  ons(): PowerCall[] {
    return this.calls.filter((c) => c.verb === "on");
  }
}
