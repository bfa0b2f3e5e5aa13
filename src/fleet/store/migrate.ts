// Applies the migrations a database lacks, each in its own transaction together with its row in
// schema_version, so a crash leaves a database at one version or the next, never between. Two
// processes starting at once (two racks' serve against one region) take an advisory lock, and the
// second finds the work done.
import { MIGRATIONS, type Migration } from "./migrations/index.js";
import type { Sql } from "./sql.js";

/** Arbitrary, fixed: the advisory lock that serialises migrations across processes. */
const MIGRATION_LOCK = 4_711_001;

export async function migrate(sql: Sql, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  await sql.transaction(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_version (
      version    integer PRIMARY KEY,
      name       text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await sql.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      const have = await tx.query("SELECT 1 FROM schema_version WHERE version = $1", [m.version]);
      if (have.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query("INSERT INTO schema_version (version, name) VALUES ($1, $2)", [m.version, m.name]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  const newest = await sql.query<{ v: number | null }>("SELECT max(version) AS v FROM schema_version");
  const known = migrations.at(-1)?.version ?? 0;
  if ((newest[0]?.v ?? 0) > known)
    throw new Error(
      `the fleet database is at schema version ${newest[0]?.v}, newer than this kvmstrap knows (${known}): upgrade kvmstrap`,
    );
  return applied;
}
