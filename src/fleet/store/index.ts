// Opening the fleet store: embedded PGlite in a directory (the default, one process) or a real
// PostgreSQL by URL (many racks' serve sharing one region). Both run the same migrations first.
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from "node:fs";
import path from "node:path";
import { InputError } from "../../core/errors.js";
import type { WriterOptions } from "./ingest.js";
import { migrate } from "./migrate.js";
import { type PostgresSqlOptions, pgliteSql, postgresSql } from "./sql.js";
import { FleetStore } from "./store.js";

export type { IdentityFlag, IdentityInput, KnownNode, Resolution } from "./identity.js";
export { normalMac, normalSerial, normalUuid, resolveIdentity } from "./identity.js";
export type { WriterOptions } from "./ingest.js";
export { type Lease, ROLLOUT_RUNNER_LEASE, type SessionLeaseOptions } from "./lease.js";
export { EVENTS_CHANNEL } from "./live.js";
export { MIGRATIONS } from "./migrations/index.js";
export { FleetStore, type Resolved, type ResolveOptions } from "./store.js";
export type * from "./types.js";

const LOCK = "kvmstrap-fleet.pid";

/**
 * PGlite in `dir` (created if missing). One process at a time: PGlite is PostgreSQL in single-user
 * mode, and two writers would corrupt the files, so a pid file says who has it; a dead owner's
 * (kill -9) is taken over, a live one's is an error naming it.
 */
export async function openPglite(dir: string, o: WriterOptions = {}): Promise<FleetStore> {
  mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, LOCK);
  takeLock(lock);
  try {
    const { PGlite } = await import("@electric-sql/pglite");
    const db = await PGlite.create(path.join(dir, "pgdata"));
    const sql = pgliteSql(db);
    try {
      await migrate(sql);
    } catch (e) {
      await sql.close().catch(() => {});
      throw e;
    }
    return new FleetStore(sql, async () => rmSync(lock, { force: true }), o);
  } catch (e) {
    rmSync(lock, { force: true });
    throw e;
  }
}

function takeLock(lock: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lock, "wx", 0o600);
      writeSync(fd, `${process.pid} ${bootId()}\n`);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const [pid, boot] = readFileSync(lock, "utf8").trim().split(" ");
      const owner = Number.parseInt(pid ?? "", 10);
      // A pid from before a reboot names some other process now.
      if (Number.isInteger(owner) && owner > 0 && boot === bootId() && alive(owner))
        throw new InputError(
          `${path.dirname(lock)}: the fleet store is open in process ${owner}; one process at a time uses an embedded store (use PostgreSQL to share one)`,
        );
      rmSync(lock, { force: true }); // its owner died (kill -9, power loss)
    }
  }
  throw new InputError(`${lock}: could not take the fleet store's lock`);
}

function bootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return "-";
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A PostgreSQL by URL (postgresql://user@host:port/db, or ?host=/socket/dir for a unix socket). */
export async function openPostgres(
  url: string,
  o: PostgresSqlOptions & { max?: number } = {},
): Promise<FleetStore> {
  const pg = (await import("pg")).default;
  const pool = new pg.Pool({ connectionString: url, max: o.max ?? 4 });
  const sql = postgresSql(pool, pg.Client, url, o);
  try {
    await sql.query("SELECT 1");
  } catch (e) {
    await pool.end().catch(() => {});
    throw new InputError(`${redact(url)}: cannot reach the fleet's PostgreSQL: ${(e as Error).message}`);
  }
  try {
    await migrate(sql);
  } catch (e) {
    await pool.end().catch(() => {});
    throw e;
  }
  return new FleetStore(sql, undefined, {}, () => new pg.Client({ connectionString: url }));
}

/**
 * The store a setting names: a postgres:// or postgresql:// URL is a shared PostgreSQL, anything
 * else the directory of an embedded one.
 */
export function openStore(target: string): Promise<FleetStore> {
  return /^postgres(ql)?:\/\//i.test(target) ? openPostgres(target) : openPglite(target);
}

/** A URL without its password, for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}
