// `kvmstrap snapshot FILE.tar.gz`: capture exactly what detection reads, so `kvmstrap detect --root`
// (or --snapshot) reproduces the report elsewhere. --mask hides MACs, serials and the hostname.

import { detectThrough } from "../app/inspect.js";
import { assertMachineRoot } from "../app/machine.js";
import type { HostFs } from "../host/fs.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";
import { writeSnapshot } from "./snapshot.js";

export const SNAPSHOT_HELP = `Usage: kvmstrap snapshot FILE.tar.gz [options]

Capture the files detection reads from /proc, /sys and /dev (symlinks kept) into a gzipped tar.
"kvmstrap detect --snapshot FILE.tar.gz" (or --root on the extracted tree) reproduces the report
on another machine; attach it to a bug report.

Options:
  --mask         Replace MAC addresses, disk serials/WWNs and the hostname with placeholders
  --root DIR     Capture from DIR instead of this host
  -h, --help     Print this help
`;

export const SNAPSHOT_OPTIONS = {
  mask: { type: "boolean" },
  root: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function snapshotCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, SNAPSHOT_OPTIONS);
  if (values.help) {
    process.stdout.write(SNAPSHOT_HELP);
    return EXIT.ok;
  }
  const [file, extra] = positionals;
  if (!file) throw new UsageError("snapshot needs an output file, e.g. kvmstrap snapshot host.tar.gz");
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const root = values.root ?? "/";
  await assertMachineRoot(root);
  const detect = (fs: HostFs) => detectThrough(fs);
  try {
    const { files, bytes } = await writeSnapshot(file, { mask: Boolean(values.mask), detect, root });
    process.stderr.write(
      `kvmstrap: wrote ${file}: ${files} entries, ${bytes} bytes${values.mask ? " (masked)" : ""}\n`,
    );
    return EXIT.ok;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code) throw new InputError(`cannot write ${file}: ${code}`);
    throw e;
  }
}

// Opening a snapshot (bounded extraction to a temporary root) is a host port; kept here for callers.
export { openSnapshot } from "../host/snapshot-archive.js";
