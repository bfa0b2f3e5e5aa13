// The lab the simulator and the fuzzers run in, shared by the PXE tier and `npm run bench:pxe`:
//  - a server namespace where the real `kvmstrap serve` runs as a process (--dhcp full on its veth,
//    TFTP on 69, HTTP on 8080), its netboot set a small generated one (a manifest of the shipped
//    schema) and its iPXE binaries Debian's;
//  - a clients namespace on the other end of the veth, where the simulator process runs.
// Nodes lease addresses from 10.81.4.0/22. The clients' namespace holds that whole block as one
// local route ("AnyIP"), so each simulated node sends from its own leased address without 1,000
// interface addresses, and the server reaches the block through one gateway (10.81.0.2): its
// neighbour table holds one entry, not one per node (the kernel's default gc_thresh3 is 1,024 for
// the whole host).
import { type ChildProcess, execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Lines, Netns, tempDir } from "../dhcp4/netns.js";
import type { BootReport, SimRun } from "./main.js";

export const SERVER_IP = "10.81.0.1";
export const GATEWAY_IP = "10.81.0.2";
export const NODE_BLOCK = "10.81.4.0/22";
export const RANGE = "10.81.4.1-10.81.7.254";
export const HTTP_PORT = 8080;
export const SERIAL = "KVMS-SIM";

const defaultRoot = () => path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

export interface LabOptions {
  /** Distinguishes labs of one process (names carry the pid and this). */
  tag: string;
  /** Repository root (bin/kvmstrap.js, templates/, test/pxe/sim/main.ts). */
  root?: string;
  /** Sizes of the generated netboot files, bytes. */
  sizes?: { kernel: number; initrd: number; rootfs: number };
  /** Extra `kvmstrap serve` flags. */
  serveArgs?: string[];
  /** Flags for node itself (e.g. --cpu-prof to profile the server). */
  nodeArgs?: string[];
}

export class Lab {
  readonly server: Netns;
  readonly clients: Netns;
  readonly dir: string;
  readonly netboot: string;
  /** sha256 by file name of everything a node may fetch. */
  readonly sha256: Record<string, string> = {};
  serve: ChildProcess | undefined;
  events: Lines | undefined;
  private sim = "";
  private readonly root: string;

  constructor(private readonly o: LabOptions) {
    this.root = o.root ?? defaultRoot();
    const id = `${process.pid}${o.tag}`;
    this.dir = tempDir(`sim-${o.tag}`);
    this.server = new Netns(`kvms-sims-${id}`);
    try {
      this.clients = new Netns(`kvms-simc-${id}`);
    } catch (e) {
      this.server.destroy();
      throw e;
    }
    try {
      const s = this.server;
      const c = this.clients;
      s.ip("link", "add", "vs", "type", "veth", "peer", "name", "vc", "netns", c.name);
      s.ip("addr", "add", `${SERVER_IP}/21`, "dev", "vs");
      s.ip("link", "set", "vs", "up");
      s.ip("route", "add", NODE_BLOCK, "via", GATEWAY_IP);
      c.ip("addr", "add", `${GATEWAY_IP}/21`, "dev", "vc");
      c.ip("link", "set", "vc", "up");
      c.ip("route", "add", "local", NODE_BLOCK, "dev", "lo");
      c.ip("route", "add", "default", "dev", "vc"); // limited broadcasts leave through the veth
      this.netboot = path.join(this.dir, "netboot");
      this.writeNetboot(o.sizes ?? { kernel: 64 * 1024, initrd: 256 * 1024, rootfs: 512 * 1024 });
      for (const f of ["undionly.kpxe", "ipxe.efi"])
        this.sha256[f] = sha256(readFileSync(path.join("/usr/lib/ipxe", f)));
      copyFileSync(path.join(this.root, "templates/answer.example.yaml"), path.join(this.dir, "answer.yaml"));
      writeFileSync(
        path.join(this.dir, "nodes.yaml"),
        `nodes:\n  - serial: ${SERIAL}\n    name: simulated\n    answer: answer.yaml\n    install: true\n`,
      );
    } catch (e) {
      this.clients.destroy();
      this.server.destroy();
      throw e;
    }
  }

  private writeNetboot(sizes: { kernel: number; initrd: number; rootfs: number }): void {
    mkdirSync(this.netboot);
    const files: Record<string, { size: number; sha256: string }> = {};
    for (const [name, size] of [
      ["vmlinuz", sizes.kernel],
      ["initrd.img", sizes.initrd],
      ["filesystem.squashfs", sizes.rootfs],
    ] as const) {
      const data = randomBytes(size);
      writeFileSync(path.join(this.netboot, name), data);
      files[name] = { size, sha256: sha256(data) };
      this.sha256[name] = files[name].sha256;
    }
    writeFileSync(
      path.join(this.netboot, "manifest.json"),
      JSON.stringify({
        name: "kvmstrap-sim",
        version: "0.0.0-sim",
        cmdline: "boot=live components fetch=@BASE@/filesystem.squashfs",
        files,
      }),
    );
  }

  /** Starts `kvmstrap serve --dhcp full` on the veth and waits for its "listening" event. */
  async start(): Promise<Record<string, unknown>> {
    const state = path.join(this.dir, "state");
    this.serve = this.server.spawn(process.execPath, [
      ...(this.o.nodeArgs ?? []),
      path.join(this.root, "bin/kvmstrap.js"),
      "serve",
      ...["--dhcp", "full", "--dhcp-range", RANGE, "--interface", "vs"],
      ...["--tftp-port", "69", "--http-port", String(HTTP_PORT)],
      ...["--netboot", this.netboot, "--ipxe-dir", "/usr/lib/ipxe"],
      ...["--nodes", path.join(this.dir, "nodes.yaml"), "--state-dir", state],
      ...(this.o.serveArgs ?? []),
      "--json",
    ]);
    this.events = new Lines(this.serve);
    const exited = new Promise<never>((_, reject) =>
      this.serve?.once("exit", (code) =>
        reject(new Error(`kvmstrap serve exited (${code}): ${this.events?.stderr.slice(0, 2000)}`)),
      ),
    );
    return Promise.race([
      this.events.wait((e) => e.type === "listening", 60_000, "kvmstrap serve listening"),
      exited,
    ]);
  }

  /** The server process's resident memory and its peak, KiB (/proc/PID/status). */
  memory(): { rssKiB: number; hwmKiB: number } {
    const status = readFileSync(`/proc/${this.serve?.pid}/status`, "utf8");
    const kib = (key: string) =>
      Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? Number.NaN);
    return { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") };
  }

  get alive(): boolean {
    return this.serve !== undefined && this.serve.exitCode === null && this.serve.signalCode === null;
  }

  /** `kvmstrap serve status --json`, run where the server is. */
  status(): { server: Record<string, unknown>; nodes: NodeStatusLike[] } {
    const out = execFileSync(
      "ip",
      [
        ...["netns", "exec", this.server.name, process.execPath, path.join(this.root, "bin/kvmstrap.js")],
        ...["serve", "status", "--server", `http://127.0.0.1:${HTTP_PORT}`, "--json"],
      ],
      { encoding: "utf8", maxBuffer: 512 * 1024 * 1024 },
    );
    return JSON.parse(out);
  }

  /** Bundles the simulator (main.ts) into one .mjs a node in the clients' namespace can run. */
  private async bundle(): Promise<string> {
    if (this.sim) return this.sim;
    const outfile = path.join(this.dir, "sim.mjs");
    await build({
      entryPoints: [path.join(this.root, "test/pxe/sim/main.ts")],
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
    this.sim = outfile;
    return outfile;
  }

  /** Runs the simulator in the clients' namespace; resolves with its JSON report. */
  async run<T = BootReport>(config: SimRun, onProgress?: (line: string) => void): Promise<T> {
    const sim = await this.bundle();
    const file = path.join(this.dir, `run-${Date.now()}-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(config));
    const child = this.clients.spawn(process.execPath, [sim, file]);
    let out = "";
    let err = "";
    child.stdout?.on("data", (d) => {
      out += d;
    });
    child.stderr?.on("data", (d: Buffer) => {
      err += d;
      for (const l of d.toString().split("\n")) if (l.trim()) onProgress?.(l);
    });
    const code = await new Promise<number | null>((r) => child.on("close", r));
    const line = out.trim().split("\n").at(-1) ?? "";
    let report: T & { fatal?: string };
    try {
      report = JSON.parse(line);
    } catch {
      throw new Error(
        `simulator exited ${code} without a report: ${out.slice(0, 500)} ${err.slice(0, 1500)}`,
      );
    }
    if (report.fatal) throw new Error(`simulator failed: ${report.fatal} ${err.slice(0, 1500)}`);
    return report;
  }

  /** A command in the clients' namespace (real clients: curl, tftp, atftp). */
  exec(cmd: string, args: string[], timeoutMs = 60_000) {
    return spawnSync("ip", ["netns", "exec", this.clients.name, cmd, ...args], {
      encoding: "buffer",
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
  }

  async stop(): Promise<void> {
    const child = this.serve;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => {
        const t = setTimeout(() => {
          child.kill("SIGKILL");
          r(null);
        }, 10_000);
        child.once("exit", () => {
          clearTimeout(t);
          r(null);
        });
      });
    }
    this.clients.destroy();
    this.server.destroy();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** The fields of `serve status --json` nodes the tests read. */
export interface NodeStatusLike {
  mac: string;
  state: string;
  installed: boolean;
  timeline: { input: string; from: string; state: string; durationMs: number; unexpected?: boolean }[];
}
