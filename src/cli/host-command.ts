// `kvmstrap host drain HOST --to TARGET`: moves every movable running VM of this host to TARGET
// through src/app/host-drain.ts (the same check and migration as `vm migrate`). The VMs that cannot
// move are listed before any moves; exit 0 when every movable VM moved, 1 when a migration failed
// (the rest stay here, named), 2 for usage or input errors.
import { type DrainEvent, hostDrain } from "../app/host-drain.js";
import { percentDone, progressLine } from "../vm/migrate-progress.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const HOST_HELP = `Usage: kvmstrap host drain HOST --to TARGET --target-report FILE [options]

Commands:
  drain HOST    Live-migrate every running VM of this host to TARGET
                (host drain --help)

Options:
  -h, --help    Print this help
`;

export const HOST_OPTIONS = { help: { type: "boolean", short: "h" } } as const satisfies OptionTable;

export const HOST_DRAIN_HELP = `Usage: kvmstrap host drain HOST --to TARGET --target-report FILE [options]

Moves every running VM of HOST (this host, reached by --connect) to TARGET, one
at a time, as "kvmstrap vm migrate" does: libvirt live migration over TLS.
Every VM is checked first against TARGET (CPU model, passthrough devices,
bridges, VLANs, networks, hugepages); those that cannot move are listed with
their reasons and stay running here. If a migration fails, the drain stops:
that VM and the ones not yet moved stay here.

Options:
  --to TARGET           Target host name or address (libvirtd on TLS)
  --target-report FILE  The target's "kvmstrap detect --json" output
  --to-connect URI      Target libvirt URI (default qemu+tls://TARGET/system)
  --connect URI         This host's libvirt URI (default qemu:///system)
  --copy-storage        Copy the VMs' file disks (not on shared storage)
  --json                Events as JSON lines on stdout, then the result
  -h, --help            Print this help

Exit codes: 0 every movable VM moved; 1 a migration failed (the rest stay
here); 2 usage or input error (HOST is not the host --connect reaches, a bad
report).
`;

export const HOST_DRAIN_OPTIONS = {
  to: { type: "string" },
  "target-report": { type: "string" },
  "to-connect": { type: "string" },
  connect: { type: "string" },
  "copy-storage": { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

function render(e: DrainEvent): void {
  const err = (s: string) => process.stderr.write(`${s}\n`);
  if (e.event === "plan") {
    err(`Moving ${e.movable.length} VM(s): ${e.movable.join(", ") || "none"}`);
    for (const n of e.notMovable) {
      err(`Not movable, stays here: ${n.vm}`);
      for (const r of n.reasons) err(`  - ${r}`);
    }
  } else if (e.event === "start") err(`[${e.index}/${e.of}] ${e.vm}`);
  else if (e.event === "progress") err(progressLine(e.vm, e));
  else {
    const down = e.downtimeMs === null ? "not reported" : `${e.downtimeMs} ms`;
    err(`${e.vm} now runs on ${e.target}: ${(e.wallMs / 1000).toFixed(2)} s, downtime ${down}`);
  }
}

export async function hostCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "drain") return hostDrainCommand(rest);
  const { values } = parse(argv, HOST_OPTIONS);
  if (values.help) {
    process.stdout.write(HOST_HELP);
    return EXIT.ok;
  }
  throw new UsageError(sub ? `unknown host command "${sub}"` : "host needs a command: drain");
}

export async function hostDrainCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, HOST_DRAIN_OPTIONS);
  if (values.help) {
    process.stdout.write(HOST_DRAIN_HELP);
    return EXIT.ok;
  }
  const [host, extra] = positionals;
  if (!host) throw new UsageError("host drain needs a HOST (this host's name)");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  if (!values.to) throw new UsageError("host drain needs --to TARGET");
  if (!values["target-report"])
    throw new UsageError('host drain needs --target-report FILE (the target\'s "kvmstrap detect --json")');
  const json = Boolean(values.json);
  const emit = (v: unknown) => process.stdout.write(`${JSON.stringify(v)}\n`);
  const r = await hostDrain(
    {
      host,
      to: values.to,
      sourceUri: values.connect ?? "qemu:///system",
      targetReport: values["target-report"],
      copyStorage: Boolean(values["copy-storage"]),
      ...(values["to-connect"] ? { targetUri: values["to-connect"] } : {}),
    },
    (e) => (json ? emit(e.event === "progress" ? { ...e, percent: percentDone(e) } : e) : render(e)),
  );
  if (json) emit({ event: "result", ...r });
  if (r.failed) {
    if (!json) {
      process.stderr.write(
        `kvmstrap: migration of ${r.failed.vm} failed: ${r.failed.error}\n  ${r.failed.vm} on this host: ${r.failed.sourceState}\n`,
      );
      if (r.notAttempted.length)
        process.stderr.write(`  not moved, still here: ${r.notAttempted.join(", ")}\n`);
    }
    return EXIT.failed;
  }
  if (!json)
    process.stdout.write(
      `${r.host} drained to ${r.target}: ${r.moved.length} moved, ${r.notMovable.length} not movable${
        r.notMovable.length ? ` (${r.notMovable.map((n) => n.vm).join(", ")})` : ""
      }\n`,
    );
  return EXIT.ok;
}
