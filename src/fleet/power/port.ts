// The power port: turning a node on, off or through a power cycle, and asking its state, whatever
// controls it: a libvirt domain (the tests' nodes, and labs), a BMC over IPMI (ipmitool) or over
// Redfish (HTTPS). The rollout asks the port to power on the nodes its decision chose. Credentials
// never appear in a command line, a log line, an event or an error message.

export type PowerState = "on" | "off" | "unknown";

export interface PowerPort {
  /** Turns the node on; already on is success. */
  on(): Promise<void>;
  /** Turns it off at once (no graceful shutdown: a node being installed has nothing to save). */
  off(): Promise<void>;
  /** Off and on again (a hard reset when it was on; on when it was off). */
  cycle(): Promise<void>;
  status(): Promise<PowerState>;
}

/** A power action that failed: which driver and node, and why (never a credential). */
export class PowerError extends Error {
  override name = "PowerError";
  constructor(
    readonly driver: "libvirt" | "ipmi" | "redfish",
    readonly target: string,
    message: string,
  ) {
    super(`${driver} ${target}: ${message}`);
  }
}
