// cli: the command-line front end. It parses arguments, calls the engine, renders events and
// reports, and maps errors to exit codes (0 ok, 1 a failing check, 2 usage or input errors). It
// holds no logic of its own; subcommands load lazily so `kvmstrap detect` starts fast.
import { EXIT, exitCodeOf, InputError, UsageError } from "../core/errors.js";
import { VERSION } from "../core/version.js";

export const HELP = `kvmstrap ${VERSION}: bare-metal provisioning for KVM hosts

Usage: kvmstrap <command> [options]

Commands:
  tui                 The interactive installer (also: kvmstrap with no arguments on a terminal)
  detect              Inventory this machine and check it is ready for KVM
  snapshot FILE       Capture what detection reads into FILE.tar.gz (for bug reports, offline work)
  answer validate F   Check an answer file against the schema and this (or a captured) machine
  answer explain F    Show every candidate each match rule saw, and why it matched or not
  answer schema       Print the answer file's JSON Schema (for editors)
  plan FILE           Show, as a diff, what applying the answer file would change
  apply FILE          Apply it (--dry-run, --yes for unattended runs, --resume after a reboot)
  undo                Revert the last apply
  confirm             Keep a network change (otherwise it reverts when its timer runs out)
  image pull|import|list
                      Cloud images: download and verify, import offline, list the cache
  vm deploy|list|show|start|stop|delete|console
                      VMs from a cached image and a cloud-init seed, with a readiness timeline
  host drain HOST     Live-migrate every movable VM of this host to another (--to)
  vm snapshot|backup|restore
                      Disk-only snapshots; full and incremental backups; restore
  install             Install the hypervisor onto a disk (from the appliance)
  verify              Check that what the answer promised is true on this host
  cluster init|join|status|leave
                      Hosts that trust each other: cluster CA, libvirt TLS, migration over TLS
  pki init|rotate|status
                      The host's CA and certificates (libvirt TLS, VNC/SPICE consoles)
  serve               PXE boot server: DHCP, TFTP and HTTP, with a live per-node timeline
  agent               The appliance's boot agent: find the answer, report to the boot
                      server, start an unattended install
  iso prepare         Make a site's appliance ISO: an answer embedded, unattended on boot
  fleet               Per-node answers from a fleet directory: layers, origins, holds
  metrics             Prometheus exporter of this host's VMs and kvmstrap's own figures

Run "kvmstrap <command> --help" for a command's options.

Global options:
  --debug             Print stack traces on errors
  --version           Print the version
  -h, --help          Print this help

Exit codes: 0 success, 1 a fail-level check or a step failed, 2 usage or input error,
70 internal error (a bug: please report it with --debug output).
`;

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<Command>> = {
  detect: async () => (await import("./detect.js")).detectCommand,
  snapshot: async () => (await import("./snapshot-command.js")).snapshotCommand,
  answer: async () => (await import("./answer-command.js")).answerCommand,
  plan: async () => (await import("./plan-command.js")).planCommand,
  apply: async () => (await import("./apply-command.js")).applyCommand,
  undo: async () => (await import("./apply-command.js")).undoCommand,
  confirm: async () => (await import("./apply-command.js")).confirmCommand,
  image: async () => (await import("./image-command.js")).imageCommand,
  tui: async () => (await import("./tui-command.js")).tuiCommand,
  vm: async () => (await import("./vm-entry.js")).vmCommand,
  serve: async () => (await import("./serve-command.js")).serveCommand,
  install: async () => (await import("./install-command.js")).installCommand,
  verify: async () => (await import("./verify-command.js")).verifyCommand,
  pki: async () => (await import("./pki-command.js")).pkiCommand,
  agent: async () => (await import("./agent-command.js")).agentCommand,
  iso: async () => (await import("./iso-command.js")).isoCommand,
  fleet: async () => (await import("./fleet-command.js")).fleetCommand,
  metrics: async () => (await import("./metrics-command.js")).metricsCommand,
  host: async () => (await import("./host-command.js")).hostCommand,
  cluster: async () => (await import("./cluster-command.js")).clusterCommand,
  // Hidden: run by libvirtd through the qemu hook the plan installs (a VM's VLAN on a Linux bridge).
  "libvirt-hook": async () => (await import("./libvirt-hook-command.js")).libvirtHookCommand,
};

export async function main(argv: string[]): Promise<number> {
  const debug = argv.includes("--debug");
  const args = argv.filter((a) => a !== "--debug");
  try {
    const [name, ...rest] = args;
    if (name === undefined && process.stdin.isTTY && process.stdout.isTTY) {
      return await (await import("./tui-command.js")).tuiCommand([]);
    }
    if (name === undefined || name === "-h" || name === "--help" || name === "help") {
      process.stdout.write(HELP);
      return name === undefined ? EXIT.usage : EXIT.ok;
    }
    if (name === "--version" || name === "-V") {
      process.stdout.write(`${VERSION}\n`);
      return EXIT.ok;
    }
    const load = COMMANDS[name];
    if (!load) throw new UsageError(`unknown command "${name}"`);
    return await (await load())(rest);
  } catch (e) {
    return reportError(e, debug);
  }
}

export function reportError(e: unknown, debug: boolean): number {
  const err = e instanceof Error ? e : new Error(String(e));
  if (err instanceof UsageError) {
    process.stderr.write(`kvmstrap: ${err.message}\nRun "kvmstrap --help" for usage.\n`);
  } else if (err instanceof InputError) {
    process.stderr.write(`kvmstrap: ${err.message}\n`);
  } else {
    process.stderr.write(`kvmstrap: internal error: ${err.message}\n`);
    if (!debug) process.stderr.write("Re-run with --debug for details.\n");
  }
  if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
  return exitCodeOf(err);
}
