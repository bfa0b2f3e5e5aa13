// `kvmstrap install`: the hypervisor onto the one disk the answer names, from the appliance itself
// (no network). The answer's install section picks the disk; the one rule set decides whether it may
// be erased; the install plan runs through the engine (journaled under /var/lib/kvmstrap/install).
// The agent of the appliance runs `kvmstrap install --answer FILE --yes` for unattended installs.
import { createWriteStream } from "node:fs";
import { createInterface } from "node:readline/promises";
import type { Writable } from "node:stream";
import { detectMachine } from "../app/inspect.js";
import {
  checkInstallDisk,
  checkInstalled,
  type DiskRow,
  INSTALL_STATE_DIR,
  installBlockers,
  installCandidates,
  prepareInstall,
  runInstall,
} from "../app/install.js";
import { withMachine } from "../app/machine.js";
import { EventBus, formatEvent, jsonLinesSink } from "../apply/events.js";
import { renderPlanText } from "../plan/diff.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const INSTALL_HELP = `Usage: kvmstrap install --answer FILE [options]
       kvmstrap install --list [--root DIR] [--json]

Install the hypervisor (Debian 12 with qemu, libvirt and kvmstrap under /opt/kvmstrap with its own
node) onto the disk the answer's install section names, from the appliance itself, without network.
The disk is erased: it must be named by byId, serial or wwn; the boot medium (by identity, whatever
its name), sr/loop/ram/md/dm/zram devices and disks in use are refused; a disk holding partitions
or filesystems needs install.wipe: true. Steps: re-check the disk, wipefs, GPT (BIOS boot + ESP +
root), mkfs, copy the live root, fstab by UUID, GRUB for BIOS and UEFI (with the removable path and
Debian's signed shim), the host configuration offline ("apply --root"), first-boot units, unmount.
Without --yes it asks for the disk's serial, typed back. A disk that already holds the install of
the same answer (its marker /etc/kvmstrap/installed.json, read without mounting) is left as it is:
exit 0 and one line saying so, so an appliance booted again after its install does not erase the
host it installed; --force erases it anyway.

Options:
  --answer FILE          The answer file (YAML) with an install section
  --yes                  Do not ask: erase the disk the answer names (required without a terminal)
  --dry-run              Print the install plan; change nothing
  --force                Install even when the disk holds the install of this same answer
  --json                 Print JSON: the plan (--dry-run), the candidates (--list) or the result
  --list                 List the disks as install candidates, usable first, USB and removable
                         last, then disks holding data, then excluded ones with the reason
  --root DIR             Plan against the machine root DIR (a snapshot or tree): only with
                         --dry-run or --list
  --events FILE|-        Also write the event stream as JSON lines to FILE, or stdout with -
  --check-disk DEVICE    The install plan's guard: re-check DEVICE now against --serial, --wwn,
                         --size and --blank; exit 1 if it changed, is in use or is the boot medium
  --serial S             With --check-disk: the serial it had when planned
  --wwn W                With --check-disk: the WWN it had when planned
  --size BYTES           With --check-disk: the size it had when planned
  --blank                With --check-disk: it was blank when planned
  -h, --help             Print this help

Exit: 0 installed, planned, or installed already (nothing erased), 1 a step failed or the disk
changed, 2 usage error or an answer the rules refuse (each reason with file:line and a fix).
`;

export const INSTALL_OPTIONS = {
  answer: { type: "string" },
  yes: { type: "boolean" },
  "dry-run": { type: "boolean" },
  force: { type: "boolean" },
  json: { type: "boolean" },
  list: { type: "boolean" },
  root: { type: "string" },
  events: { type: "string" },
  "check-disk": { type: "string" },
  serial: { type: "string" },
  wwn: { type: "string" },
  size: { type: "string" },
  blank: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

const interactive = () => Boolean(process.stdin.isTTY && process.stderr.isTTY);

export async function installCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, INSTALL_OPTIONS);
  if (values.help) {
    process.stdout.write(INSTALL_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values["check-disk"] !== undefined) return guard(values["check-disk"], values);
  if (values.list) return list(values.root, Boolean(values.json));
  const file = values.answer;
  if (!file) throw new UsageError("install needs --answer FILE (or --list)");
  const dryRun = Boolean(values["dry-run"]);
  if (values.root && !dryRun)
    throw new UsageError(
      "--root plans against another machine root: add --dry-run (the install runs on this host)",
    );
  if (!dryRun && !values.yes && !interactive())
    throw new UsageError("no terminal to ask on: use --yes to erase the disk the answer names");

  const p = await prepareInstall(file, { root: values.root });
  // Before the rules' verdict: the same answer's install on the disk is done, whatever the rules
  // would say about erasing it now (it holds data since that install).
  if (!dryRun && !values.force) {
    const c = await checkInstalled(p);
    if (c.decision === "already-installed") {
      if (values.json)
        process.stdout.write(
          `${JSON.stringify({ status: "already-installed", disk: c.device, detail: c.detail })}\n`,
        );
      process.stderr.write(`kvmstrap: ${c.detail}\n`);
      return EXIT.ok;
    }
    if (c.device) process.stderr.write(`kvmstrap: ${c.detail}\n`);
  }
  const blockers = installBlockers(p);
  for (const i of p.issues.filter((x) => x.level === "warning"))
    process.stderr.write(`warning: ${i.line ? `${i.file}:${i.line}: ` : ""}${i.path}: ${i.message}\n`);
  if (dryRun) {
    if (values.json)
      process.stdout.write(`${JSON.stringify({ disk: p.disk, issues: p.issues, plan: p.plan }, null, 2)}\n`);
    else process.stdout.write(renderPlanText(p.plan));
    return blockers.length ? EXIT.usage : EXIT.ok;
  }
  if (blockers.length) {
    process.stderr.write(`kvmstrap: the install is refused:\n${blockers.join("\n")}\n`);
    return EXIT.usage;
  }
  const d = p.disk;
  if (!values.yes) {
    const want = d?.serial ?? d?.byId[0]?.replace(/^\/dev\/disk\/by-id\//, "") ?? "";
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    const typed = await rl
      .question(
        `This ERASES ${d?.name ?? "the disk"} (${d?.model ?? "disk"}, ${d?.byId[0] ?? ""}).\n` +
          `Type its ${d?.serial ? "serial" : "by-id name"} (${want}) to go on: `,
      )
      .finally(() => rl.close());
    if (typed.trim() !== want) {
      process.stderr.write("kvmstrap: not confirmed: nothing was changed\n");
      return EXIT.failed;
    }
  }
  const { bus, close } = makeBus(values.events);
  try {
    const r = await runInstall(p, { bus, onProgress: (line) => process.stderr.write(`${line}\n`) });
    if (values.json)
      process.stdout.write(
        `${JSON.stringify({ status: r.status, runId: r.runId, disk: d?.byId[0] ?? null, counts: r.counts, error: r.error ?? null, failedId: r.failedId ?? null })}\n`,
      );
    if (r.status === "succeeded") {
      process.stderr.write(
        `kvmstrap: installed onto ${d?.name ?? "the disk"}; remove the boot medium and reboot (journal: ${INSTALL_STATE_DIR})\n`,
      );
      return EXIT.ok;
    }
    return EXIT.failed;
  } finally {
    await close();
  }
}

async function guard(
  device: string,
  v: {
    serial?: string | undefined;
    wwn?: string | undefined;
    size?: string | undefined;
    blank?: boolean | undefined;
  },
): Promise<number> {
  let sizeBytes: number | undefined;
  if (v.size !== undefined) {
    sizeBytes = Number(v.size);
    if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0)
      throw new UsageError(`--size must be a number of bytes, not "${v.size}"`);
  }
  const problems = await checkInstallDisk(device, {
    serial: v.serial,
    wwn: v.wwn,
    sizeBytes,
    blank: Boolean(v.blank),
  });
  for (const line of problems) process.stderr.write(`kvmstrap: ${device}: ${line}\n`);
  if (!problems.length) process.stderr.write(`kvmstrap: ${device} is the disk that was planned\n`);
  return problems.length ? EXIT.failed : EXIT.ok;
}

async function list(root: string | undefined, json: boolean): Promise<number> {
  const report = await withMachine({ root }, (m) => detectMachine(m, { mode: "never" }));
  const rows = installCandidates(report);
  if (json) {
    const out = rows.map((r) => ({
      name: r.disk.name,
      byId: r.disk.byId[0] ?? null,
      serial: r.disk.serial,
      sizeBytes: r.disk.sizeBytes,
      usable: !r.excluded,
      excluded: r.excluded,
      holdsData: r.holdsData,
      removable: r.removable,
      bootMedium: r.bootMedium,
      findings: r.findings,
    }));
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    if (!rows.length) process.stdout.write("no disks\n");
    for (const r of rows) process.stdout.write(`${rowLine(r)}\n`);
  }
  return EXIT.ok;
}

export function rowLine(r: DiskRow): string {
  const state = r.excluded
    ? `no: ${r.excluded}`
    : r.holdsData
      ? `needs wipe: ${r.holdsData}`
      : r.removable
        ? "yes (USB/removable)"
        : "yes";
  return `${r.label}\n    ${r.disk.byId[0] ?? "(no by-id link)"}\n    install: ${state}`;
}

function makeBus(events: string | undefined): { bus: EventBus; close: () => Promise<void> } {
  const bus = new EventBus((e) => process.stderr.write(`kvmstrap: event sink: ${(e as Error).message}\n`));
  bus.subscribe((e) => {
    const line = formatEvent(e);
    if (line) process.stderr.write(`${line}\n`);
  });
  let stream: Writable | null = null;
  if (events === "-") bus.subscribe(jsonLinesSink(process.stdout));
  else if (events) {
    stream = createWriteStream(events, { flags: "a" });
    bus.subscribe(jsonLinesSink(stream));
  }
  return {
    bus,
    close: async () => {
      await bus.drain(15_000);
      if (stream) await new Promise<void>((r) => stream?.end(r));
    },
  };
}
