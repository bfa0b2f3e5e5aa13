// Access to the snapshots of real machines in ../shared/fixtures/hosts. They are read in place
// (extracted to a temporary directory per test run), never copied into the project. When the folder
// is absent, `sharedHosts.available` is false and suites skip with a visible reason.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const projectRoot = path.resolve(here, "../..");
export const sharedHostsDir = path.resolve(projectRoot, "../shared/fixtures/hosts");

export const HOSTS = [
  "amd-ryzen-1600-desktop",
  "intel-i7-1270p-laptop",
  "intel-xeon-gold-5218r-server",
  "kvm-guest-skylake-offline-cpus",
] as const;
export type SharedHost = (typeof HOSTS)[number];

export const sharedHostsAvailable =
  existsSync(sharedHostsDir) && HOSTS.every((h) => existsSync(path.join(sharedHostsDir, `${h}.tar.gz`)));

export const SKIP_REASON = `shared host snapshots not found at ${sharedHostsDir}: skipping the real-machine suites`;

const extracted = new Map<string, string>();

/** Extracts a shared snapshot (once per process) and returns its root directory. */
export function sharedHostRoot(name: SharedHost): string {
  const cached = extracted.get(name);
  if (cached) return cached;
  const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-${name}-`));
  // Test setup only: the system tar keeps the snapshot's symlinks exactly as captured.
  execFileSync("tar", ["-xzf", path.join(sharedHostsDir, `${name}.tar.gz`), "-C", dir]);
  extracted.set(name, dir);
  return dir;
}

export function listSharedHosts(): string[] {
  return existsSync(sharedHostsDir) ? readdirSync(sharedHostsDir).filter((f) => f.endsWith(".tar.gz")) : [];
}
