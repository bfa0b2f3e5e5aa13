// A test-owned PostgreSQL 15 (Debian's postgresql-15): initdb into a temporary directory, listening
// only on a unix socket in that directory (no port to collide with, reachable from any network
// namespace through the file system). As root it runs as the unprivileged `postgres` user (initdb
// and the server refuse root), else as the caller. Always stopped: stop(), or at process exit.
import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
export const PG_BIN = process.env.KVMSTRAP_PG_BIN ?? "/usr/lib/postgresql/15/bin";
const PORT = 5432; // only names the socket file in the private directory

/** Why a test PostgreSQL cannot start here, or undefined when it can. */
export function postgresMissing(): string | undefined {
  if (!existsSync(path.join(PG_BIN, "initdb")))
    return `${PG_BIN}/initdb not found (apt-get install postgresql-15)`;
  if (process.getuid?.() === 0 && !systemUser())
    return "running as root and no postgres or nobody user to run it as";
  return undefined;
}

/** The user the server runs as when we are root. */
function systemUser(): { name: string; uid: number; gid: number } | undefined {
  for (const name of ["postgres", "nobody"]) {
    try {
      const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
      return { name, uid: id("-u"), gid: id("-g") };
    } catch {
      // try the next
    }
  }
  return undefined;
}

export class TestPostgres {
  private stopped = false;
  private readonly onExit = () => this.stopNow();

  private constructor(
    readonly dir: string,
    private readonly user: string | undefined,
  ) {
    process.once("exit", this.onExit);
  }

  get data(): string {
    return path.join(this.dir, "data");
  }

  /** A URL for database `db` over the unix socket. */
  url(db = "fleet"): string {
    return `postgresql://kvmstrap@localhost:${PORT}/${db}?host=${encodeURIComponent(this.dir)}`;
  }

  static async start(tag = "test"): Promise<TestPostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-pg-${tag}-${process.pid}-`));
    const u = process.getuid?.() === 0 ? systemUser() : undefined;
    if (u) chownSync(dir, u.uid, u.gid);
    const pg = new TestPostgres(dir, u?.name);
    try {
      await pg.ctl(["initdb", "-D", pg.data, "-o", "-A trust -U kvmstrap -E UTF8 --locale=C --no-sync"]);
      await pg.startServer();
      await pg.psql("postgres", "CREATE DATABASE fleet");
    } catch (e) {
      await pg.stop();
      throw e;
    }
    return pg;
  }

  /** Runs a PostgreSQL program as the server's user. */
  private async as(program: string, args: string[]): Promise<string> {
    const bin = path.join(PG_BIN, program);
    const [cmd, argv] = this.user ? ["runuser", ["-u", this.user, "--", bin, ...args]] : [bin, args];
    try {
      return (await run(cmd, argv, { cwd: "/", timeout: 60_000 })).stdout;
    } catch (e) {
      const log = path.join(this.dir, "log");
      const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-15).join("\n") : "";
      throw new Error(`${program} ${args.join(" ")}: ${(e as Error).message}\n${tail}`);
    }
  }

  private ctl(args: string[]): Promise<string> {
    return this.as("pg_ctl", args);
  }

  async psql(db: string, command: string): Promise<string> {
    return this.as("psql", [
      "-X",
      "-q",
      "-At",
      "-h",
      this.dir,
      "-p",
      String(PORT),
      "-U",
      "kvmstrap",
      "-d",
      db,
      "-c",
      command,
    ]);
  }

  async startServer(): Promise<void> {
    await this.ctl([
      "start",
      "-w",
      "-t",
      "60",
      "-D",
      this.data,
      "-l",
      path.join(this.dir, "log"),
      "-o",
      `-k ${this.dir} -p ${PORT} -c listen_addresses='' -c max_connections=50`,
    ]);
  }

  /** Stops the server as a crash would (immediate: no checkpoint, recovery from the WAL at start). */
  async crash(): Promise<void> {
    await this.ctl(["stop", "-w", "-m", "immediate", "-D", this.data]);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    process.removeListener("exit", this.onExit);
    if (existsSync(path.join(this.data, "postmaster.pid")))
      await this.ctl(["stop", "-w", "-m", "fast", "-D", this.data]).catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** At process exit (a test runner killed mid-test): synchronous, immediate. */
  private stopNow(): void {
    if (this.stopped) return;
    this.stopped = true;
    try {
      const bin = path.join(PG_BIN, "pg_ctl");
      const args = ["stop", "-w", "-m", "immediate", "-D", this.data];
      if (this.user)
        execFileSync("runuser", ["-u", this.user, "--", bin, ...args], { cwd: "/", stdio: "ignore" });
      else execFileSync(bin, args, { stdio: "ignore" });
    } catch {
      // not running
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
