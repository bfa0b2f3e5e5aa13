// Copies one fleet store into another, empty one (PGlite to PostgreSQL, or back): every table of the
// schema, ids kept, in one transaction on the target. The tables, their columns, keys and foreign
// keys are read from the catalog rather than listed here, so a table a later migration adds is
// copied without anyone remembering to add it (and a schema mismatch is refused, not half-copied).
// Rows travel as jsonb text in batches: exact for every type the schema uses (bigint, timestamptz
// to the microsecond, jsonb documents), and one batch in memory at a time.
import { InputError } from "../../core/errors.js";
import { ROLLOUT_RUNNER_LEASE } from "./lease.js";
import type { Sql, Tx } from "./sql.js";

export interface TableInfo {
  name: string;
  columns: string[];
  /** The primary key's columns and their types, in key order: the batches walk it. */
  key: { column: string; type: string }[];
  identity: string[];
}

export interface TableCount {
  table: string;
  source: number;
  target: number;
}

export interface CopyOptions {
  /** Rows per batch (default 1,000). */
  batch?: number;
  /** After each batch: the table and the rows copied into it so far. */
  progress?: (table: string, rows: number) => void;
}

const q = (s: string) => `"${s.replaceAll('"', '""')}"`;

/** The schema's tables (schema_version aside: each side keeps its own), parents before children. */
export async function storeTables(tx: Tx): Promise<TableInfo[]> {
  const names = (
    await tx.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_version'
       ORDER BY c.relname`,
    )
  ).map((r) => r.name);
  const fks = await tx.query<{ child: string; parent: string }>(
    `SELECT c.relname AS child, p.relname AS parent FROM pg_constraint k
       JOIN pg_class c ON c.oid = k.conrelid JOIN pg_class p ON p.oid = k.confrelid
     WHERE k.contype = 'f' AND k.connamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())`,
  );
  const tables: TableInfo[] = [];
  for (const name of dependencyOrder(names, fks)) {
    const cols = await tx.query<{ name: string; identity: string; type: string; key: number | null }>(
      `SELECT a.attname AS name, a.attidentity AS identity, format_type(a.atttypid, a.atttypmod) AS type,
              array_position(i.indkey::int2[], a.attnum) AS key
       FROM pg_attribute a
       LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
       WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
       ORDER BY a.attnum`,
      [q(name)],
    );
    const key = cols
      .filter((c) => c.key !== null)
      .sort((a, b) => Number(a.key) - Number(b.key))
      .map((c) => ({ column: c.name, type: c.type }));
    if (key.length === 0) throw new Error(`table ${name} has no primary key: cannot copy it in batches`);
    tables.push({
      name,
      columns: cols.map((c) => c.name),
      key,
      identity: cols.filter((c) => c.identity !== "").map((c) => c.name),
    });
  }
  return tables;
}

/** Parents first (a table's foreign keys name tables before it); a cycle is a schema this cannot copy. */
export function dependencyOrder(names: string[], fks: { child: string; parent: string }[]): string[] {
  const out: string[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (t: string) => {
    if (state.get(t) === "done") return;
    if (state.get(t) === "visiting") throw new Error(`foreign keys form a cycle through ${t}`);
    state.set(t, "visiting");
    for (const f of fks) if (f.child === t && f.parent !== t && names.includes(f.parent)) visit(f.parent);
    state.set(t, "done");
    out.push(t);
  };
  for (const n of names) visit(n);
  return out;
}

export async function schemaVersion(tx: Tx): Promise<number> {
  const r = await tx.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_version");
  return Number(r[0]?.v ?? 0);
}

/** Row counts of the tables that hold any rows (for "the target is not empty"). */
export async function nonEmpty(tx: Tx, tables: TableInfo[]): Promise<{ table: string; rows: number }[]> {
  const out: { table: string; rows: number }[] = [];
  for (const t of tables) {
    const rows = await count(tx, t.name);
    if (rows > 0) out.push({ table: t.name, rows });
  }
  return out;
}

async function count(tx: Tx, table: string): Promise<number> {
  const r = await tx.query<{ n: string | number }>(`SELECT count(*)::text AS n FROM ${q(table)}`);
  return Number(r[0]?.n ?? 0);
}

/**
 * The pid of another session holding the region's rollout-runner lease on a PostgreSQL store: a
 * running `kvmstrap serve` (PGlite needs no such check: its directory lock already refused).
 */
export async function servePid(sql: Sql): Promise<number | undefined> {
  if (sql.driver !== "postgres") return undefined;
  const r = await sql.query<{ pid: number }>(
    `SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
     WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1 AND l.objsubid = 1
       AND d.datname = current_database() AND l.pid <> pg_backend_pid() LIMIT 1`,
    [ROLLOUT_RUNNER_LEASE],
  );
  return r[0]?.pid;
}

/**
 * Copies every table of `from` into `to`, whose tables must all be empty, in one transaction on
 * `to` (its tables locked against writers meanwhile): all or nothing. Identity sequences are set
 * past the copied ids. Row counts are compared before the commit; a difference rolls it back.
 */
export async function copyStore(from: Sql, to: Sql, o: CopyOptions = {}): Promise<TableCount[]> {
  const batch = o.batch ?? 1000;
  const source = await storeTables(from);
  const target = await storeTables(to);
  const shape = (ts: TableInfo[]) => ts.map((t) => `${t.name}(${[...t.columns].sort().join(",")})`).join(" ");
  if (shape(source) !== shape(target))
    throw new Error(`the two stores' schemas differ after migrating: ${shape(source)} vs ${shape(target)}`);
  return to.transaction(async (tx) => {
    await tx.exec(`LOCK TABLE ${target.map((t) => q(t.name)).join(", ")} IN EXCLUSIVE MODE`);
    const full = await nonEmpty(tx, target);
    if (full.length > 0)
      throw new InputError(
        `the target store is not empty (${full.map((f) => `${f.table}: ${f.rows}`).join(", ")}): store-copy copies only into an empty store, it never merges`,
      );
    const counts: TableCount[] = [];
    for (const t of target) {
      const copied = await copyTable(from, tx, t, batch, o.progress);
      for (const c of t.identity)
        await tx.query(
          `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(${q(c)}) FROM ${q(t.name)}), 0) + 1, false)`,
          [q(t.name), c],
        );
      const row = { table: t.name, source: await count(from, t.name), target: await count(tx, t.name) };
      if (row.source !== row.target || row.target !== copied)
        throw new Error(
          `${t.name}: ${row.source} rows in the source, ${copied} copied, ${row.target} in the target: nothing was committed`,
        );
      counts.push(row);
    }
    return counts;
  });
}

async function copyTable(
  from: Tx,
  to: Tx,
  t: TableInfo,
  batch: number,
  progress?: (table: string, rows: number) => void,
): Promise<number> {
  const keyList = t.key.map((k) => q(k.column)).join(", ");
  const after = `(${keyList}) > (${t.key.map((k, i) => `$${i + 1}::${k.type}`).join(", ")})`;
  const keyOut = t.key.map((k, i) => `b.${q(k.column)}::text AS k${i}`).join(", ");
  const select = (first: boolean) =>
    `SELECT to_jsonb(b)::text AS j, ${keyOut} FROM (SELECT * FROM ${q(t.name)}${first ? "" : ` WHERE ${after}`}
     ORDER BY ${keyList} LIMIT ${batch}) b ORDER BY ${t.key.map((k) => `b.${q(k.column)}`).join(", ")}`;
  const cols = t.columns.map(q).join(", ");
  const insert = `INSERT INTO ${q(t.name)} (${cols})${t.identity.length ? " OVERRIDING SYSTEM VALUE" : ""}
     SELECT ${cols} FROM jsonb_populate_recordset(NULL::${q(t.name)}, $1::jsonb)`;
  let last: string[] | undefined;
  let copied = 0;
  for (;;) {
    const rows = await from.query<Record<string, string>>(select(!last), last);
    if (rows.length === 0) break;
    await to.query(insert, [`[${rows.map((r) => r.j).join(",")}]`]);
    copied += rows.length;
    progress?.(t.name, copied);
    const end = rows[rows.length - 1] as Record<string, string>;
    last = t.key.map((_, i) => end[`k${i}`] as string);
    if (rows.length < batch) break;
  }
  return copied;
}
