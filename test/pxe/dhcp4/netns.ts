// Network namespaces, bridges and processes inside them, for the tests that use real sockets,
// real firmware and dnsmasq. Everything is named with the test's pid and removed afterwards.
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));

/** Why the netns tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for ip netns";
  const probe = `kvms-probe-${process.pid}`;
  if (spawnSync("ip", ["netns", "add", probe]).status !== 0) return "ip netns add failed";
  spawnSync("ip", ["netns", "del", probe]);
  return undefined;
}

export const has = (tool: string): boolean => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

export class Netns {
  private children: ChildProcess[] = [];
  constructor(readonly name: string) {
    execFileSync("ip", ["netns", "add", name]);
    this.ip("link", "set", "lo", "up");
  }

  ip(...args: string[]): string {
    return execFileSync("ip", ["-n", this.name, ...args], { encoding: "utf8" });
  }

  /** A bridge with an address (CIDR), up. */
  bridge(name: string, cidr?: string): void {
    this.ip("link", "add", name, "type", "bridge");
    if (cidr) this.ip("addr", "add", cidr, "dev", name);
    this.ip("link", "set", name, "up");
  }

  /** A tap for a QEMU guest, enslaved to a bridge. */
  tap(name: string, bridge: string): void {
    this.ip("tuntap", "add", "dev", name, "mode", "tap");
    this.ip("link", "set", name, "master", bridge, "up");
  }

  /** A veth pair: `inside` on `bridge` here, `outside` moved to `peer` with an optional address. */
  veth(inside: string, bridge: string, peer: Netns, outside: string, cidr?: string): void {
    this.ip("link", "add", inside, "type", "veth", "peer", "name", outside);
    this.ip("link", "set", outside, "netns", peer.name);
    this.ip("link", "set", inside, "master", bridge, "up");
    if (cidr) peer.ip("addr", "add", cidr, "dev", outside);
    peer.ip("link", "set", outside, "up");
  }

  exec(cmd: string, args: string[]): string {
    return execFileSync("ip", ["netns", "exec", this.name, cmd, ...args], { encoding: "utf8" });
  }

  spawn(cmd: string, args: string[]): ChildProcess {
    const child = spawn("ip", ["netns", "exec", this.name, cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.children.push(child);
    return child;
  }

  destroy(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    spawnSync("ip", ["netns", "del", this.name]);
  }
}

/** Bundles serve-runner.ts (the shipped server code) into one .mjs that node can run in a namespace. */
export async function bundleRunner(): Promise<string> {
  const dir = tempDir("dhcp-runner");
  const outfile = path.join(dir, "runner.mjs");
  await build({
    entryPoints: [path.join(here, "serve-runner.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    outfile,
    banner: {
      js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
    },
    logLevel: "error",
  });
  return outfile;
}

/** JSON lines from a child's stdout, with a wait for the first one matching. */
export class Lines {
  readonly seen: Record<string, unknown>[] = [];
  private waiters: {
    pred: (o: Record<string, unknown>) => boolean;
    resolve: (o: Record<string, unknown>) => void;
  }[] = [];
  stderr = "";
  constructor(child: ChildProcess) {
    let buf = "";
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString();
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let o: Record<string, unknown>;
        try {
          o = JSON.parse(line);
        } catch {
          continue;
        }
        this.seen.push(o);
        const ready = this.waiters.filter((w) => w.pred(o));
        this.waiters = this.waiters.filter((w) => !ready.includes(w));
        for (const w of ready) w.resolve(o);
      }
    });
    child.stderr?.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  wait(
    pred: (o: Record<string, unknown>) => boolean,
    ms: number,
    what: string,
  ): Promise<Record<string, unknown>> {
    const hit = this.seen.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(
        () =>
          reject(
            new Error(
              `timed out after ${ms} ms waiting for ${what}; saw ${JSON.stringify(this.seen).slice(0, 1500)} ${this.stderr.slice(0, 500)}`,
            ),
          ),
        ms,
      );
      this.waiters.push({
        pred,
        resolve: (o) => {
          clearTimeout(t);
          resolve(o);
        },
      });
    });
  }
}

const temps: string[] = [];

/** A temporary directory removed by removeTempDirs() (call it from afterAll). */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvms-${prefix}-`));
  temps.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of temps.splice(0)) rmSync(dir, { recursive: true, force: true });
}
