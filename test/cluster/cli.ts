// What every cluster test does with the hosts of test/cluster/hosts.ts: virsh on a host's own
// libvirtd, a guest's serial log, the host report from the built CLI run inside a host's namespaces,
// and the built `kvmstrap vm migrate` from host A to host B with its JSON result.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { execa } from "execa";
import { projectRoot } from "../helpers/shared-hosts.js";
import type { Cluster, ClusterHost } from "./hosts.js";

export const BIN = path.join(projectRoot, "bin/kvmstrap.js");

export const virsh = (h: ClusterHost, ...args: string[]) =>
  execa("virsh", ["-c", h.localUri, ...args], { reject: false, env: { LC_ALL: "C" } });

export const serialOf = (h: ClusterHost, vm: string) =>
  readFile(path.join(h.daemon.dirs.log, `qemu/${vm}-serial.log`), "utf8").catch(() => "");

/** `kvmstrap detect --json` run inside the host's namespaces, saved to `file`. */
export async function reportOf(h: ClusterHost, file: string): Promise<string> {
  const r = await execa(
    "nsenter",
    ["-t", String(h.daemon.pid), "-n", "-m", "-u", "node", BIN, "detect", "--json"],
    {
      reject: false,
    },
  );
  await writeFile(file, r.stdout);
  return file;
}

/** The built `kvmstrap vm migrate VM` from A to B over TLS, with B's report and any further options. */
export const migrateCli = (c: Cluster, vm: string, report: string, ...more: string[]) =>
  execa(
    "node",
    [
      BIN,
      "vm",
      "migrate",
      vm,
      "--to",
      c.b.address,
      "--to-connect",
      c.b.tlsUri,
      "--connect",
      c.a.localUri,
      "--target-report",
      report,
      ...more,
    ],
    { reject: false, env: { LC_ALL: "C" } },
  );

/** A migration on shared storage (no --copy-storage), JSON lines on stdout. */
export const migrateNoCopy = (c: Cluster, vm: string, report: string) =>
  migrateCli(c, vm, report, "--max-downtime", "300", "--json");

export type MigrateResultLine = {
  event: "result";
  outcome: string;
  target: string;
  wallMs: number;
  downtimeMs: number | null;
  copiedDisks: string[];
  [key: string]: unknown;
};

/** The result line of `vm migrate --json` (an error naming the output when there is none). */
export function migrateResult(stdout: string): MigrateResultLine {
  const found = stdout
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as { event?: string })
    .find((e) => e.event === "result");
  if (!found) throw new Error(`vm migrate --json printed no result line:\n${stdout}`);
  return found as MigrateResultLine;
}
