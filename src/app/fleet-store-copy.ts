// `kvmstrap fleet store-copy`: moves a fleet from one store to another (the embedded PGlite of a
// first rack to the region's PostgreSQL, typically). Both are opened with the store's own open
// functions, so both are migrated to this kvmstrap's schema first and hold the same tables; the
// copy itself is src/fleet/store/copy.ts. Only counts are reported: node_power rows hold BMC
// passwords, and nothing of a row is ever printed.
import { existsSync } from "node:fs";
import path from "node:path";
import { InputError } from "../core/errors.js";
import { copyStore, schemaVersion, servePid, type TableCount } from "../fleet/store/copy.js";
import { type FleetStore, openStore, redact } from "../fleet/store/index.js";

export interface StoreCopyRequest {
  from: string;
  to: string;
  /** After each batch: the table and its rows copied so far. */
  progress?: (table: string, rows: number) => void;
}

export interface StoreCopyResult {
  from: string;
  to: string;
  schemaVersion: number;
  tables: TableCount[];
  ms: number;
}

const isUrl = (s: string) => /^postgres(ql)?:\/\//i.test(s);

/** What a store setting names, for the "same store" check and messages. */
function where(s: string): string {
  return isUrl(s) ? redact(s) : path.resolve(s);
}

async function open(side: "source" | "target", target: string): Promise<FleetStore> {
  try {
    return await openStore(target);
  } catch (e) {
    // Every failure to open is about the store named (unreachable, in use, corrupt, newer schema);
    // the store's own input errors already name it.
    const m = (e as Error).message;
    throw new InputError(e instanceof InputError ? `${side}: ${m}` : `${side} ${where(target)}: ${m}`);
  }
}

export async function fleetStoreCopy(r: StoreCopyRequest): Promise<StoreCopyResult> {
  const started = Date.now();
  const same = isUrl(r.from) && isUrl(r.to) ? r.from === r.to : where(r.from) === where(r.to);
  if (same) throw new InputError(`source and target are the same store (${where(r.from)})`);
  // Opening creates a missing PGlite directory: right for the target, never for the source.
  if (!isUrl(r.from) && !existsSync(path.join(r.from, "pgdata")))
    throw new InputError(`source ${where(r.from)}: no fleet store there (no pgdata directory)`);
  const source = await open("source", r.from);
  try {
    const pid = await servePid(source.sql);
    if (pid !== undefined)
      throw new InputError(
        `source ${where(r.from)}: a kvmstrap serve is using it (PostgreSQL session ${pid} holds the rollout runner's lease); stop every serve on it first`,
      );
    const target = await open("target", r.to);
    try {
      // A serve on the target would go on from its own view of an empty store: start it afterwards.
      const busy = await servePid(target.sql);
      if (busy !== undefined)
        throw new InputError(
          `target ${where(r.to)}: a kvmstrap serve is using it (PostgreSQL session ${busy} holds the rollout runner's lease); stop it, copy, then start serve`,
        );
      const tables = await copyStore(source.sql, target.sql, { progress: r.progress });
      return {
        from: where(r.from),
        to: where(r.to),
        schemaVersion: await schemaVersion(target.sql),
        tables,
        ms: Date.now() - started,
      };
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

/** The result as the CLI prints it: one line a table, 80 columns. */
export function storeCopyText(c: StoreCopyResult): string {
  const total = c.tables.reduce((n, t) => n + t.target, 0);
  return [
    `copied ${c.from}`,
    `    to ${c.to}`,
    `schema version ${c.schemaVersion}, ${total} rows in ${(c.ms / 1000).toFixed(1)} s, one transaction`,
    "",
    `${"table".padEnd(24)}${"source".padStart(12)}${"target".padStart(12)}`,
    ...c.tables.map(
      (t) => `${t.table.padEnd(24)}${String(t.source).padStart(12)}${String(t.target).padStart(12)}`,
    ),
    "",
    "every table's rows counted equal on both sides; id sequences set past the copied ids",
    "",
  ].join("\n");
}
