// `kvmstrap serve`: the PXE boot server (src/pxe/server.ts), with its node table shown live on a
// terminal, as one line per event otherwise, or as JSON lines with --json; `serve status` and
// `serve rearm` talk to a running server over its HTTP API.
import path from "node:path";
import { parseSize } from "../answer/units.js";
import { defaultServeStateDir, FleetClient, request, serverBase } from "../app/fleet-client.js";
import { NODE_PATHS } from "../app/node-protocol.js";
import { MAC } from "../core/grammar.js";
import { startDashboard } from "../pxe/dashboard.js";
import { formatServeEvent } from "../pxe/format.js";
import { type NodeStatus, nodeStatus } from "../pxe/http/status.js";
import { defaultNetbootDir } from "../pxe/netboot.js";
import type { ServeEvent } from "../pxe/node-table.js";
import { BootServer } from "../pxe/server.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, InputError, UsageError } from "./errors.js";

export const SERVE_HELP = `Usage: kvmstrap serve [options]
       kvmstrap serve status [--server URL] [--json] [--follow]
       kvmstrap serve rearm MAC [--server URL] [--state-dir DIR]

The fleet (kvmstrap fleet nodes|show|approve|hold|rearm) lives in the fleet store: every node event
goes to it, keyed by the node's DMI UUID and serial first, MACs second.

PXE boot server for one L2 segment: DHCP (ProxyDHCP beside the site's DHCP server, or full DHCP on
an isolated network), TFTP for iPXE, HTTP for iPXE scripts, the appliance's netboot set, each node's
answer file and its events. Shows every node's progress from DHCP to "verified": a live table on a
terminal (Up/Down, Enter for a node's timeline, q quits), one line per event otherwise.

Options:
  --dhcp MODE           proxy (default): boot information only, never an address; full: addresses
                        from --dhcp-range (leases kept in the state directory); off: no DHCP
  --dhcp-range A-B      Address range for --dhcp full, e.g. 10.0.0.100-10.0.0.199
  --interface IF        Serve DHCP only on this interface (its address is the server's)
  --listen ADDR         Address for TFTP and HTTP (default 0.0.0.0); with DHCP on and no
                        interface given, the interface holding ADDR serves DHCP
  --tftp-port N         TFTP port (default 69)
  --tftp-max N          Concurrent TFTP transfers; more are answered "busy" (default 100)
  --http-port N         HTTP port (default 8080)
  --files DIR           Also serve DIR's files over TFTP (by name) and HTTP (/files/NAME)
  --netboot DIR         The appliance's netboot set (vmlinuz, initrd.img, filesystem.squashfs,
                        manifest.json); default iso-build/out/netboot beside this installation
                        if it exists, else /opt/kvmstrap/netboot
  --ipxe-dir DIR        iPXE binaries for TFTP and /ipxe/ (default /usr/lib/ipxe, package ipxe)
  --nodes FILE          Known nodes (YAML): mac/uuid/serial/asset, answer file, install: true
  --known-only          Ignore nodes the nodes file does not list (default: boot them interactively)
  --state-dir DIR       Leases, tokens' key, admin token, installed nodes (default
                        /var/lib/kvmstrap/serve as root, else ~/.local/state/kvmstrap/serve)
  --token-ttl DURATION  How long a node's token is valid after its boot script (default 4h)
  --store DIR|URL       Keep the fleet (every node event, keyed by DMI UUID and serial, then MAC)
                        in a store: a directory (embedded PGlite, one serve at a time) or
                        postgres://... shared by one serve per rack (default with --fleet:
                        STATE-DIR/fleet-db; without --store or --fleet: no store)
  --fleet DIR           The fleet's answers (site.yaml, racks/, roles/, nodes/, assign.yaml): a
                        node the nodes file does not list boots in discovery mode, reports its
                        hardware and waits until "kvmstrap fleet approve"; its answer is merged
                        from DIR and checked against its report (a failing one holds it)
  --rack NAME           This serve's rack in the fleet (default: --interface, else the host name)
  --rack-bandwidth RATE Bytes per second for all downloads from this server together (/netboot/,
                        /ipxe/, /files/: kernel, initrd, squashfs, ISO), shared as the rack's
                        uplink is: 100M = 100 MB/s (decimal), 100MiB binary; bytes, not bits (a
                        10 Gbit/s uplink is 1.25G). Default: no cap
  --server URL          For status and rearm: the running server (default http://127.0.0.1:8080)
  --follow              For status: keep printing events as they happen
  --json                JSON on stdout: serve streams every event, one per line; status prints
                        the node table with timelines (with --follow: the events, one per line)
  -h, --help            Print this help

Exit codes: 0 stopped by SIGINT/SIGTERM or q, 2 usage or input error (a bad nodes file, answer or
netboot set; a port in use).
`;

export const SERVE_OPTIONS = {
  dhcp: { type: "string" },
  "dhcp-range": { type: "string" },
  interface: { type: "string" },
  listen: { type: "string" },
  "tftp-port": { type: "string" },
  "tftp-max": { type: "string" },
  "http-port": { type: "string" },
  files: { type: "string" },
  netboot: { type: "string" },
  "ipxe-dir": { type: "string" },
  nodes: { type: "string" },
  "known-only": { type: "boolean" },
  "state-dir": { type: "string" },
  "token-ttl": { type: "string" },
  store: { type: "string" },
  fleet: { type: "string" },
  rack: { type: "string" },
  "rack-bandwidth": { type: "string" },
  server: { type: "string" },
  follow: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

type Values = ReturnType<typeof parse<typeof SERVE_OPTIONS>>["values"];

const SERVER_ONLY = [
  "dhcp",
  "dhcp-range",
  "interface",
  "listen",
  "tftp-port",
  "tftp-max",
  "http-port",
  "files",
  "netboot",
  "ipxe-dir",
  "nodes",
  "known-only",
  "token-ttl",
  "store",
  "fleet",
  "rack",
  "rack-bandwidth",
] as const;

export async function serveCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, SERVE_OPTIONS);
  if (values.help) {
    process.stdout.write(SERVE_HELP);
    return EXIT.ok;
  }
  const [sub, ...rest] = positionals;
  if (sub === "status" || sub === "rearm") {
    const stray = SERVER_ONLY.find((k) => values[k] !== undefined);
    if (stray) throw new UsageError(`--${stray} is an option of the server, not of "serve ${sub}"`);
    if (sub === "status") {
      if (rest.length) throw new UsageError(`serve status takes no arguments (got "${rest[0]}")`);
      return status(values);
    }
    if (rest.length !== 1 || !rest[0]) throw new UsageError("serve rearm needs one MAC address");
    return rearm(values, rest[0]);
  }
  if (sub !== undefined) throw new UsageError(`unknown serve subcommand "${sub}" (status, rearm)`);
  if (values.server !== undefined || values.follow)
    throw new UsageError(
      `--${values.follow ? "follow" : "server"} belongs to "serve status" or "serve rearm"`,
    );
  return serve(values);
}

function port(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw new UsageError(`--${flag} ${value}: expected a port number 0-65535`);
  return n;
}

function positive(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    throw new UsageError(`--${flag} ${value}: expected a whole number 1-65535`);
  return n;
}

/** --rack-bandwidth: "100M", "1.25G", "512KiB", "100M/s" -> bytes per second (sizes as answers write them). */
export function parseRate(text: string): number {
  let n = Number.NaN;
  try {
    n = parseSize(text.trim().replace(/\/s$/i, ""));
  } catch {
    // not a size: the usage error below says what is
  }
  if (!(n >= 1000 && n <= 1e13))
    throw new UsageError(
      `--rack-bandwidth ${text}: expected bytes per second from 1K to 10T, such as 100M (100 MB/s) or 1.25G`,
    );
  return Math.floor(n);
}

/** "90", "90s", "30m", "4h", "2d" -> seconds. */
export function parseDuration(text: string, flag: string): number {
  const m = /^(\d+)\s*(s|m|h|d)?$/.exec(text.trim());
  const n = m ? Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "s") as "s"] : 0;
  if (!m || n <= 0) throw new UsageError(`--${flag} ${text}: expected a duration such as 900, 30m, 4h or 2d`);
  return n;
}

export const defaultStateDir = defaultServeStateDir;

async function serve(v: Values): Promise<number> {
  const dhcp = v.dhcp ?? "proxy";
  if (dhcp !== "proxy" && dhcp !== "full" && dhcp !== "off")
    throw new UsageError(`--dhcp ${dhcp}: expected proxy, full or off`);
  if (dhcp === "full" && !v["dhcp-range"]) throw new UsageError("--dhcp full needs --dhcp-range A-B");
  if (dhcp !== "full" && v["dhcp-range"]) throw new UsageError("--dhcp-range is for --dhcp full");
  const netbootDir = v.netboot ?? defaultNetbootDir();
  const explicitNetboot = v.netboot !== undefined;
  const stateDir = path.resolve(v["state-dir"] ?? defaultStateDir());
  if (v.rack !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(v.rack))
    throw new UsageError(`--rack ${v.rack}: expected a name of letters, digits, ".", "_" and "-"`);
  // The fleet store is kept when asked for (--store) or when the fleet is on (--fleet): PGlite's
  // first open takes seconds of CPU, which a plain boot server on a small machine need not pay.
  const store = v.store ?? (v.fleet !== undefined ? path.join(stateDir, "fleet-db") : undefined);
  const options = {
    dhcp,
    dhcpRange: v["dhcp-range"],
    interface: v.interface,
    listen: v.listen ?? "0.0.0.0",
    tftpPort: port(v["tftp-port"], "tftp-port", 69),
    tftpMax: positive(v["tftp-max"], "tftp-max"),
    httpPort: port(v["http-port"], "http-port", 8080),
    filesDir: v.files ? path.resolve(v.files) : undefined,
    netbootDir: path.resolve(netbootDir),
    ipxeDir: path.resolve(v["ipxe-dir"] ?? "/usr/lib/ipxe"),
    nodesFile: v.nodes ? path.resolve(v.nodes) : undefined,
    stateDir,
    store: store === undefined || /^postgres(ql)?:\/\//i.test(store) ? store : path.resolve(store),
    fleetDir: v.fleet ? path.resolve(v.fleet) : undefined,
    storeFirst: true,
    rack: v.rack,
    rackBandwidth: v["rack-bandwidth"] === undefined ? undefined : parseRate(v["rack-bandwidth"]),
    tokenTtlSeconds: v["token-ttl"] ? parseDuration(v["token-ttl"], "token-ttl") : 4 * 3600,
    knownOnly: v["known-only"] ?? false,
  } as const;
  let server: BootServer;
  const early: ServeEvent[] = [];
  try {
    server = await BootServer.start(options);
  } catch (e) {
    // Without --netboot, a missing default set is not an error: the server still serves --files and iPXE.
    if (
      explicitNetboot ||
      !(e instanceof InputError) ||
      !e.message.startsWith(path.join(options.netbootDir, "manifest.json"))
    )
      throw e;
    server = await BootServer.start({ ...options, netbootDir: undefined });
    early.push({ type: "warning", time: new Date().toISOString(), message: e.message });
  }
  for (const message of server.warnings)
    early.push({ type: "warning", time: new Date().toISOString(), message });
  return run(server, v, early);
}

async function run(server: BootServer, v: Values, early: ServeEvent[]): Promise<number> {
  const table = server.table;
  const listening: ServeEvent = {
    type: "listening",
    time: server.info.startedAt,
    http: server.info.http,
    tftp: server.info.tftp,
    dhcp: server.info.dhcp,
    netboot: server.info.netboot,
  };
  let stop: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    stop = resolve;
  });
  // Before "listening" is printed: a script that stops the server as soon as it reads that line
  // must get a clean stop (exit 0, leases saved), not the default death by signal.
  const onSignal = () => stop();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let cleanup = () => {};
  if (v.json) {
    const write = (e: ServeEvent) => {
      if (!process.stdout.destroyed) process.stdout.write(`${JSON.stringify(e)}\n`);
    };
    process.stdout.on("error", () => stop()); // the reader went away (| head): stop serving
    for (const e of [listening, ...early]) write(e);
    cleanup = table.subscribe(write);
  } else if (process.stdout.isTTY && process.stdin.isTTY) {
    const i = server.info;
    const header = `kvmstrap serve  HTTP ${i.http}  TFTP ${i.tftp}  DHCP ${i.dhcp}`;
    let notice = early.find((e) => e.type === "warning")?.message;
    const dash = startDashboard(
      process.stdout,
      process.stdin,
      header,
      () => table.all().map((n) => nodeStatus(n, undefined)),
      () => stop(),
      () => notice,
    );
    const off = table.subscribe((e) => {
      if (e.type === "warning") notice = e.message;
      dash.changed();
    });
    cleanup = () => {
      off();
      dash.stop();
    };
  } else {
    const write = (e: ServeEvent) => {
      const line = formatServeEvent(e);
      if (line !== null && !process.stdout.destroyed) process.stdout.write(`${line}\n`);
    };
    process.stdout.on("error", () => stop());
    for (const e of [listening, ...early]) write(e);
    cleanup = table.subscribe(write);
  }
  await done;
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
  await server.close();
  cleanup();
  return EXIT.ok;
}

const serverUrl = (v: Values) => serverBase(v.server);

async function status(v: Values): Promise<number> {
  const base = serverUrl(v);
  if (v.follow) {
    const res = await request(`${base}/v1/events`, { signal: AbortSignal.timeout(2 ** 31 - 1) });
    if (!res.ok || !res.body) throw new InputError(`${base}/v1/events: HTTP ${res.status}`);
    const stop = () => process.exit(0);
    process.once("SIGINT", stop);
    let buf = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body) {
      buf += decoder.decode(chunk as Uint8Array, { stream: true });
      for (let nl = buf.indexOf("\n"); nl >= 0; nl = buf.indexOf("\n")) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (v.json) process.stdout.write(`${line}\n`);
        else {
          const e = JSON.parse(line) as ServeEvent | { type: "hello" };
          const text = e.type === "hello" ? null : formatServeEvent(e);
          if (text) process.stdout.write(`${text}\n`);
        }
      }
    }
    return EXIT.ok;
  }
  const res = await request(`${base}${NODE_PATHS.status}`);
  if (!res.ok) throw new InputError(`${base}${NODE_PATHS.status}: HTTP ${res.status}`);
  const body = (await res.json()) as { server: Record<string, unknown>; nodes: NodeStatus[] };
  if (v.json) {
    process.stdout.write(`${JSON.stringify(body, null, 2)}\n`);
    return EXIT.ok;
  }
  const s = body.server;
  process.stdout.write(`kvmstrap serve at ${base}: HTTP ${s.http}, TFTP ${s.tftp}, DHCP ${s.dhcp}\n`);
  const mem = s.memory as { rss?: number; heapUsed?: number } | undefined;
  const mib = (b: number | undefined) => (b === undefined ? "?" : (b / 1048576).toFixed(0));
  if (mem)
    process.stdout.write(
      `${s.nodeCount ?? body.nodes.length} nodes tracked, server RSS ${mib(mem.rss)} MiB, heap ${mib(mem.heapUsed)} MiB\n`,
    );
  if (!body.nodes.length) process.stdout.write("no nodes seen yet\n");
  for (const n of body.nodes) {
    const last = n.timeline.at(-1);
    process.stdout.write(
      `${n.mac}  ${n.state.padEnd(14)} ${(n.elapsedMs / 1000).toFixed(0).padStart(6)} s  ${n.name ?? ""}${last ? `  ${n.lastEvent}` : ""}\n`,
    );
    if (n.hint) process.stdout.write(`  stalled in ${n.stalledIn}: ${n.hint}\n`);
  }
  return EXIT.ok;
}

async function rearm(v: Values, macArg: string): Promise<number> {
  const mac = macArg.toLowerCase().replaceAll("-", ":");
  if (!MAC.test(mac)) throw new UsageError(`serve rearm: "${macArg}" is not ${MAC.describe}`);
  const client = await FleetClient.connect({ server: v.server, stateDir: v["state-dir"] });
  await client.rearmMac(mac);
  process.stdout.write(`${mac} re-armed: its next network boot runs the installer again\n`);
  return EXIT.ok;
}
