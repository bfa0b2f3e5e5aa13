// `kvmstrap fleet store-copy`: moves a fleet's store (embedded PGlite to PostgreSQL, typically);
// the use case is src/app/fleet-store-copy.ts.
import { fleetStoreCopy, storeCopyText } from "../app/fleet-store-copy.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const FLEET_STORE_COPY_HELP = `Usage: kvmstrap fleet store-copy --from DIR|URL --to DIR|URL [--json]

Copies a fleet store into another, empty one: every node with its MACs, identity flags, reports,
approvals, holds, assignments and power settings, every event and timeline, rollouts with their
waves and nodes, and leases, keeping their ids. A DIR is an embedded store (PGlite; kvmstrap
serve's default is STATE/fleet-db), a URL a PostgreSQL (postgresql://USER@HOST[:PORT]/DB, or
?host=/socket/dir for a unix socket).

Both stores are first migrated to this kvmstrap's schema (an older source is upgraded in place; a
source newer than this kvmstrap is refused). The copy runs in one transaction on the target, in
batches of 1,000 rows: all of it is there afterwards, or nothing. The id sequences are set past
the copied ids, and each table's rows are counted on both sides before the commit.

Stop every kvmstrap serve using the source first: an embedded store is open in one process at a
time (a running serve makes this command exit 2 naming its pid), and on PostgreSQL a serve
holding the rollout runner's lease is refused too (on the source and on the target). Start serve
with --store TARGET once the copy is done.

Options:
  --from DIR|URL   The store to copy (it is not changed, apart from the migration)
  --to DIR|URL     The store to copy into: it must hold no rows at all (never merged into)
  --json           Print the row counts per table as JSON
  -h, --help       Print this help

Only row counts are printed, never a row (power settings hold BMC passwords). Exit 0 copied; 2
for a bad option, a source or target that cannot be opened, the same store twice, a target that
is not empty, or a source in use.
`;

export const FLEET_STORE_COPY_OPTIONS = {
  from: { type: "string" },
  to: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function fleetStoreCopyCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parse(argv, FLEET_STORE_COPY_OPTIONS);
  if (v.help || positionals[0] === "help") {
    process.stdout.write(FLEET_STORE_COPY_HELP);
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (!v.from) throw new UsageError("fleet store-copy needs --from DIR|URL (the store to copy)");
  if (!v.to) throw new UsageError("fleet store-copy needs --to DIR|URL (an empty store to copy into)");
  // Progress on a terminal only: a script reads the result, not the counting.
  const tty = process.stderr.isTTY;
  const result = await fleetStoreCopy({
    from: v.from,
    to: v.to,
    progress: tty ? (table, rows) => process.stderr.write(`\r${table}: ${rows} rows\x1b[K`) : undefined,
  });
  if (tty) process.stderr.write("\r\x1b[K");
  process.stdout.write(v.json ? `${JSON.stringify(result, null, 2)}\n` : storeCopyText(result));
  return EXIT.ok;
}
