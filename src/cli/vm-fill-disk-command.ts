// `kvmstrap vm fill-disk`: a VM's image onto its disk on a cluster store, once, while that disk is
// blank (src/vm/fill-disk.ts). The plan runs it for a VM whose `store:` volume is an iSCSI LUN or a
// file on NFS; people can run it the same way. The disk is given as the JSON the plan shows.
import { vmFillDisk } from "../app/vm-fill-disk.js";
import { FillError, fillTargetSchema } from "../vm/fill-disk.js";
import { DEFAULT_CACHE_DIR } from "../vm/image-index.js";
import { DeployError } from "../vm/vm-state.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const VM_FILL_DISK_HELP = `Usage: kvmstrap vm fill-disk --image NAME|PATH --disk JSON [options]

Writes a VM's image onto its disk on a cluster store (an iSCSI LUN, a file on
NFS, a kernel pool's device), once: only while the disk reads as zeros in its
first and last MiB. A disk holding anything else is used as it is and never
written. The image goes on in two steps (all after its first MiB, then the
first MiB), so an interrupted write leaves the disk blank for the next run.
kvmstrap's plan runs this for each VM whose store: volume is iSCSI or NFS.

Options:
  --image NAME|PATH   An image of the cache (kvmstrap image list) or a file
  --cache DIR         The image cache (default ${DEFAULT_CACHE_DIR})
  --disk JSON         The disk as qemu opens it, for example
                      {"driver":"iscsi","portal":"10.30.0.5:3260",
                       "target":"iqn.2026-12.net.example:san1","lun":1,
                       "user":"kvm","initiatorName":"iqn.2026-12.org.kvmstrap:c.a"}
                      {"driver":"nfs","server":"10.30.0.6","path":"/export/vm1"}
                      {"driver":"file"|"host_device","filename":"/dev/..."}
  --secret-file FILE  The iSCSI CHAP password of "user" (read by qemu)
  --size BYTES        Size of a file this creates where none exists (NFS, file)
  --json              Print the outcome as JSON
  -h, --help          Print this help

Exit codes: 0 written, or the disk holds data and was left as it is; 1 qemu
could not read the image or reach or write the disk; 2 usage error.
`;

export const VM_FILL_DISK_OPTIONS = {
  image: { type: "string" },
  cache: { type: "string" },
  disk: { type: "string" },
  "secret-file": { type: "string" },
  size: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

/** --disk is one JSON object of a few hundred bytes; anything far larger is not one. */
const DISK_JSON_MAX = 4096;

export async function vmFillDiskCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, VM_FILL_DISK_OPTIONS);
  if (values.help) {
    process.stdout.write(VM_FILL_DISK_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!values.image) throw new UsageError("vm fill-disk needs --image NAME|PATH");
  if (!values.disk) throw new UsageError("vm fill-disk needs --disk JSON (see --help)");
  if (values.disk.length > DISK_JSON_MAX)
    throw new UsageError(`--disk is longer than ${DISK_JSON_MAX} bytes`);
  let raw: unknown;
  try {
    raw = JSON.parse(values.disk);
  } catch (e) {
    throw new UsageError(`--disk is not JSON: ${(e as Error).message}`);
  }
  const parsed = fillTargetSchema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(`--disk: ${i?.path.join(".") || "the object"}: ${i?.message}`);
  }
  let createBytes: number | undefined;
  if (values.size !== undefined) {
    createBytes = Number(values.size);
    if (!Number.isSafeInteger(createBytes) || createBytes < 1)
      throw new UsageError(`--size must be a whole number of bytes (got "${values.size}")`);
  }
  try {
    const r = await vmFillDisk({
      image: values.image,
      ...(values.cache ? { cacheDir: values.cache } : {}),
      target: parsed.data,
      ...(values["secret-file"] ? { secretFile: values["secret-file"] } : {}),
      ...(createBytes !== undefined ? { createBytes } : {}),
      log: (line) => process.stderr.write(`kvmstrap vm fill-disk: ${line}\n`),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof DeployError) {
      process.stderr.write(
        `kvmstrap vm fill-disk: ${e.message}\n${e.remediation ? `  fix: ${e.remediation}\n` : ""}`,
      );
      return EXIT.usage;
    }
    if (!(e instanceof FillError)) throw e;
    process.stderr.write(`kvmstrap vm fill-disk: ${e.message}\n`);
    return EXIT.failed;
  }
}
