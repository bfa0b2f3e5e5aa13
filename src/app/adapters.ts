// The composition root: the only place that picks the adapters behind the engine's ports for a
// machine root. The CLI, the TUI and the server get them from here, so they cannot wire the engine
// differently.
import path from "node:path";
import { ChrootRunner, type CommandRunner, ExecaRunner } from "../host/commands.js";
import { RootedTargetFs, type TargetFs } from "../host/target.js";
import type { Libvirt } from "../vm/libvirt.js";
import { VirshLibvirt } from "../vm/virsh-libvirt.js";

export interface Adapters {
  root: string;
  target: TargetFs;
  runner: CommandRunner;
  /** The libvirt connection a plan's VM actions go through: this host's system libvirtd (none for
   *  another machine root: VMs are deployed on a running host). Connects on first use. */
  libvirt?: Libvirt | undefined;
}

/** Files and sysfs writes under `root`; commands inside it (chroot) unless it is this host. */
export function adaptersFor(root: string): Adapters {
  const real = path.resolve(root);
  return {
    root: real,
    target: new RootedTargetFs(real),
    runner: real === "/" ? new ExecaRunner() : new ChrootRunner(real),
    libvirt: real === "/" ? libvirtAt(SYSTEM_LIBVIRT) : undefined,
  };
}

export const SYSTEM_LIBVIRT = "qemu:///system";

/** The libvirt port for a connection URI: the one place the virsh adapter is chosen. */
export const libvirtAt = (uri: string): Libvirt => new VirshLibvirt(uri);

/** Journal and logs: <root>/var/lib/kvmstrap unless given. */
export const stateDirOf = (root: string, stateDir?: string | undefined): string =>
  stateDir ?? path.join(path.resolve(root), "var/lib/kvmstrap");
