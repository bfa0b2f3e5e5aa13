// Both drivers for the fleet tier's tests: a fresh PGlite directory, or a fresh database on the
// file's test PostgreSQL.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { type FleetStore, openPglite, openPostgres } from "../../../src/fleet/store/index.js";
import type { TestPostgres } from "./postgres-server.js";

export type DriverName = "pglite" | "postgres";
export const DRIVERS: readonly DriverName[] = ["pglite", "postgres"];

let dbs = 0;

/** A new, empty target for `driver`: a directory for PGlite, a database URL for PostgreSQL. */
export async function freshTarget(driver: DriverName, server: TestPostgres | undefined): Promise<string> {
  if (driver === "pglite") return mkdtempSync(path.join(tmpdir(), `kvmstrap-fleet-${process.pid}-`));
  if (!server) throw new Error("no test PostgreSQL");
  const name = `t${process.pid}_${++dbs}`;
  const c = new pg.Client({ connectionString: server.url("postgres") });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  return server.url(name);
}

export function open(driver: DriverName, target: string): Promise<FleetStore> {
  return driver === "pglite" ? openPglite(target) : openPostgres(target);
}

export function removeTarget(driver: DriverName, target: string): void {
  if (driver === "pglite") rmSync(target, { recursive: true, force: true });
}
