// Offline targets: a machine root that is not running (an installer's target mounted under a
// directory). Files and commands that only change the disk work there; steps that act on the
// running kernel, network or services would act on the installer instead (or fail), so they are
// deferred: journaled as "deferred" and carried out by the first-boot resume on the real machine.
import path from "node:path";
import type { Action } from "../plan/actions.js";

/** Offline unless said otherwise when the root is not this machine's "/". */
export function isOfflineTarget(root: string, flag?: "offline" | "online"): boolean {
  if (flag) return flag === "offline";
  return path.resolve(root) !== "/";
}

/** Commands that talk to the running system, and what they act on. */
const LIVE_COMMANDS: Record<string, string> = {
  hostname: "sets the running hostname",
  timedatectl: "talks to the running systemd-timedated",
  modprobe: "loads a module into the running kernel",
  rmmod: "unloads a module from the running kernel",
  sysctl: "sets the running kernel's parameters",
  udevadm: "talks to the running udev",
  virsh: "talks to the running libvirtd",
  ip: "changes the running network",
  ifreload: "reloads the running network",
  ifup: "changes the running network",
  ifdown: "changes the running network",
  networkctl: "reloads the running network",
  nmcli: "talks to the running NetworkManager",
};
/** systemctl verbs that act on running units (enable/disable only write symlinks: fine offline). */
const LIVE_SYSTEMCTL = new Set(["start", "stop", "restart", "reload", "try-restart", "daemon-reload"]);

/** Why the action only makes sense on the running machine, or null when it works on a mounted root. */
export function liveOnlyReason(a: Action): string | null {
  if (a.kind === "write-sysfs") return `writes the running kernel's ${a.path}`;
  if (a.kind === "libvirt" || a.kind === "vm-overlay" || a.kind === "vm-seed")
    return "a VM is deployed through the running host's libvirtd";
  if (a.kind !== "run-command") return null;
  if (a.effect === "network") return "reloads the running network";
  if (a.effect === "module-reload") return "reloads modules of the running kernel";
  const [file, ...args] = a.argv;
  const name = path.posix.basename(file ?? "");
  if (name === "systemctl") {
    const verb = args.find((x) => !x.startsWith("-"));
    return verb && LIVE_SYSTEMCTL.has(verb) ? `systemctl ${verb} acts on the running systemd` : null;
  }
  if (name === "netplan") return args[0] === "apply" ? "applies the network to the running system" : null;
  return LIVE_COMMANDS[name] ?? null;
}
