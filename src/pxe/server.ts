// `kvmstrap serve` put together: DHCP (proxy, full or off) with kvmstrap's boot policy, TFTP for the
// iPXE binaries and --files, HTTP (http/app.ts), and the node table every one of them feeds. One
// object to start and one close() that stops them all and waits for the state on disk.
import os from "node:os";
import path from "node:path";
import { type SeenEvent, ServeFleet } from "../app/fleet-serve.js";
import { Coalescer } from "../core/coalesce.js";
import { InputError } from "../core/errors.js";
import { Attribution } from "./attribution.js";
import { bootImageSource, listBootImages } from "./boot-files.js";
import { bootPolicy } from "./boot-policy.js";
import { JsonFileLeaseStore, LeaseTable, parseRange } from "./dhcp4/leases.js";
import { loadDeviceSocketAddon } from "./dhcp4/native.js";
import { type Dhcp4Event, type Dhcp4Mode, Dhcp4Server } from "./dhcp4/server.js";
import type { Binding } from "./dhcp4/socket.js";
import { buildHttpApp, type HttpContext } from "./http/app.js";
import { RackBandwidth } from "./http/rack-bandwidth.js";
import { loadNetboot, type Netboot } from "./netboot.js";
import { NodeTable, type NodeTableOptions, type ServeEvent } from "./node-table.js";
import { loadNodesFile, NodesConfig } from "./nodes-file.js";
import { loadInstalled, saveInstalled } from "./state-file.js";
import { directorySource, TftpServer, type TftpSource, type TransferEvent } from "./tftp/index.js";
import { ADMIN_TOKEN_FILE, NodeTokens, stateSecret, TOKEN_KEY_FILE } from "./tokens.js";

export interface ServeOptions {
  dhcp: "proxy" | "full" | "off";
  /** "A-B", for --dhcp full. */
  dhcpRange?: string | undefined;
  interface?: string | undefined;
  /** Address the TFTP and HTTP servers bind; 0.0.0.0 for all. */
  listen: string;
  tftpPort: number;
  httpPort: number;
  /** Concurrent TFTP transfers (the TFTP server's maxTransfers; default 100). */
  tftpMax?: number | undefined;
  filesDir?: string | undefined;
  /** The netboot set; undefined: serve no appliance (scripts answer 503). */
  netbootDir?: string | undefined;
  ipxeDir: string;
  nodesFile?: string | undefined;
  stateDir: string;
  tokenTtlSeconds: number;
  knownOnly: boolean;
  /** Full DHCP lease time (s). */
  leaseSeconds?: number;
  /** Stall timeouts, for tests and slow sites. */
  timeouts?: NodeTableOptions["timeouts"];
  /** The fleet store: a directory (embedded PGlite) or a postgres:// URL; undefined: none. */
  store?: string | undefined;
  /** Open the store before listening (an explicit --store or --fleet: its errors stop the start). */
  storeFirst?: boolean;
  /** The fleet answers directory: unknown nodes are discovered and answered from it. */
  fleetDir?: string | undefined;
  /** This serve's rack (its L2 segment) in the fleet. */
  rack?: string | undefined;
  /** A cap on this rack's /netboot/ bytes in all, bytes per second (--rack-bandwidth); undefined: none. */
  rackBandwidth?: number | undefined;
}

export interface ServeInfo {
  http: string;
  tftp: string;
  tftpMax: number;
  dhcp: string;
  netboot: string | null;
  nodesFile: string | null;
  /** The fleet store (no password), the rack, and the fleet directory, when kept. */
  store: string | null;
  rack: string | null;
  fleet: string | null;
  knownNodes: number;
  startedAt: string;
}

/** Concurrent TFTP transfers unless --tftp-max says otherwise (dnsmasq's tftp-max is 50). */
export const DEFAULT_TFTP_MAX = 100;
const WILDCARD = new Set(["0.0.0.0", "::", ""]);
const DHCP_NAMES: Record<number, string> = {
  1: "DISCOVER",
  2: "OFFER",
  3: "REQUEST",
  5: "ACK",
  6: "NAK",
  8: "INFORM",
};

/**
 * The interface's first IPv4 address and netmask. Node lists only running interfaces; one without
 * carrier (a bridge whose ports are all stopped VMs' taps, a NIC before its first node is cabled
 * or powered on) is asked of the kernel through the DHCP socket addon instead.
 */
async function ipv4Of(ifname: string): Promise<{ address: string; netmask: string } | undefined> {
  const listed = os.networkInterfaces()[ifname]?.find((a) => a.family === "IPv4");
  if (listed) return listed;
  try {
    return (await loadDeviceSocketAddon()).interfaceIPv4(ifname);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENODEV" || code === "EADDRNOTAVAIL") return undefined;
    throw e;
  }
}

/** The interface that holds an address. */
function interfaceWith(address: string): { name: string; netmask: string } | undefined {
  for (const [name, addrs] of Object.entries(os.networkInterfaces()))
    for (const a of addrs ?? [])
      if (a.family === "IPv4" && a.address === address) return { name, netmask: a.netmask };
  return undefined;
}

export class BootServer {
  private sweeper: NodeJS.Timeout | undefined;
  private saver: Coalescer | undefined;
  private closed = false;

  private constructor(
    readonly table: NodeTable,
    readonly info: ServeInfo,
    private readonly parts: {
      dhcp?: Dhcp4Server;
      tftp: TftpServer;
      http: Awaited<ReturnType<typeof buildHttpApp>>;
      fleet?: ServeFleet;
    },
    readonly adminTokenFile: string,
    /** Problems worth saying at start that do not stop the server. */
    readonly warnings: string[] = [],
  ) {}

  static async start(o: ServeOptions, table?: NodeTable): Promise<BootServer> {
    // Inputs first, so a bad nodes file or netboot set is an exit-2 error before any socket opens.
    const nodes = o.nodesFile ? await loadNodesFile(o.nodesFile) : new NodesConfig();
    const netboot: Netboot | undefined = o.netbootDir ? await loadNetboot(o.netbootDir) : undefined;
    const net = await resolveNetwork(o);
    const t =
      table ??
      new NodeTable({
        unattended: (mac) => nodes.find({ mac })?.install === true,
        ...(o.timeouts ? { timeouts: o.timeouts } : {}),
      });
    const key = Buffer.from(await stateSecret(o.stateDir, TOKEN_KEY_FILE), "base64url");
    const adminToken = await stateSecret(o.stateDir, ADMIN_TOKEN_FILE);
    const stateFile = path.join(o.stateDir, "nodes-state.json");
    for (const mac of await loadInstalled(stateFile)) t.touch(mac, true);
    const attribution = new Attribution();
    // The store opens before any socket: a bad --fleet or an unreachable PostgreSQL is an exit-2 error.
    const rack = o.rack ?? o.interface ?? os.hostname();
    const fleet = o.store
      ? await ServeFleet.start(
          { store: o.store, rack, fleetDir: o.fleetDir, source: `serve ${rack}` },
          (message) => t.publish({ type: "warning", time: new Date().toISOString(), message }),
          o.storeFirst ?? true,
        )
      : undefined;
    const offFleet = fleet ? t.subscribe((e) => toFleet(fleet, e)) : () => {};
    // Every node change the store commits, from any serve of the region, reaches /v1/events (the
    // dashboard's fleet view, `status --follow`) as a fleet-node event.
    fleet
      ?.follow((node) => t.publish({ type: "fleet-node", time: new Date().toISOString(), node }))
      .catch(() => {
        // a store that did not open is said by the fleet's own problem report
      });
    const bootImages = await listBootImages(o.ipxeDir);
    const warnings: string[] = [];
    if (o.dhcp !== "off" && !bootImages.length)
      warnings.push(
        `${o.ipxeDir}: no iPXE boot images (install the ipxe package or pass --ipxe-dir): PXE ROMs will get "file not found"`,
      );
    if (!netboot)
      warnings.push("no netboot set: nodes that ask for their boot script get 503 (pass --netboot DIR)");

    // One bucket for the whole rack: every node's download shares it, as they share its uplink.
    const bandwidth = o.rackBandwidth ? RackBandwidth.of(new Map([[rack, o.rackBandwidth]])) : undefined;
    const ctx: HttpContext = {
      table: t,
      nodes,
      netboot,
      ipxeDir: o.ipxeDir,
      filesDir: o.filesDir,
      tokens: new NodeTokens(key, o.tokenTtlSeconds),
      adminToken,
      attribution,
      publicBase: undefined,
      knownOnly: o.knownOnly,
      info: () => ({}),
      persist: async () => {},
      fleet,
      artifactThrottle: bandwidth ? () => bandwidth.throttle(rack) : undefined,
      // The store is open here when --store or --fleet was given (storeFirst): rollouts run from it.
      rollouts:
        fleet?.ready === true
          ? await fleet.startRollouts((rollout) =>
              t.publish({ type: "rollout", time: new Date().toISOString(), rollout }),
            )
          : undefined,
    };
    const http = await buildHttpApp(ctx);
    const tftp = new TftpServer({
      source: layeredSource([
        ...(o.filesDir ? [directorySource(o.filesDir)] : []),
        bootImageSource(o.ipxeDir, bootImages),
      ]),
      address: o.listen,
      port: o.tftpPort,
      maxTransfers: o.tftpMax ?? DEFAULT_TFTP_MAX,
      onStart: (s) => {
        const mac = attribution.lookup(s.client.split(":")[0] ?? "");
        if (mac)
          t.input(
            mac,
            "tftp-start",
            `${s.file} (${s.size} bytes, blksize ${s.blksize}, windowsize ${s.windowsize})`,
          );
      },
      onTransfer: (e) => tftpDone(t, attribution, e),
    });
    let dhcp: Dhcp4Server | undefined;
    try {
      await http.listen({ host: o.listen, port: o.httpPort });
      await tftp.listen();
      const httpAddr = http.server.address();
      const httpPort = typeof httpAddr === "object" && httpAddr ? httpAddr.port : o.httpPort;
      ctx.publicBase = net.serverIp ? `http://${net.serverIp}:${httpPort}` : undefined;
      if (net.binding && net.serverIp && ctx.publicBase) {
        const mode = await dhcpMode(o, net.serverIp, net.netmask);
        const skip = o.knownOnly
          ? (c: { mac: string; uuid: string | undefined }) =>
              nodes.find({ mac: c.mac, uuid: c.uuid }) ? undefined : "not in the nodes file (--known-only)"
          : undefined;
        dhcp = await Dhcp4Server.start({
          binding: net.binding,
          serverIp: net.serverIp,
          mode,
          booter: bootPolicy({
            httpBase: ctx.publicBase,
            scriptPath: () => "/boot.ipxe",
            ...(skip ? { skip } : {}),
          }),
          onEvent: (e) => dhcpEvent(t, attribution, e),
        });
      }
      const tftpAddr = tftp.address();
      const shownHost = net.serverIp ?? (WILDCARD.has(o.listen) ? "0.0.0.0" : o.listen);
      const info: ServeInfo = {
        http: ctx.publicBase ?? `http://${shownHost}:${httpPort}`,
        tftp: `${tftpAddr.address}:${tftpAddr.port}`,
        tftpMax: o.tftpMax ?? DEFAULT_TFTP_MAX,
        dhcp:
          o.dhcp === "off"
            ? "off"
            : `${o.dhcp} on ${net.binding && "interface" in net.binding ? net.binding.interface : o.listen} as ${net.serverIp}${o.dhcp === "full" ? ` range ${o.dhcpRange}` : ""}`,
        netboot: netboot ? netboot.dir : null,
        nodesFile: o.nodesFile ?? null,
        store: fleet ? fleet.where : null,
        rack: fleet ? rack : null,
        fleet: o.fleetDir ?? null,
        knownNodes: nodes.entries.length,
        startedAt: new Date().toISOString(),
      };
      const server: BootServer = new BootServer(
        t,
        info,
        { ...(dhcp ? { dhcp } : {}), ...(fleet ? { fleet } : {}), tftp, http },
        path.join(o.stateDir, ADMIN_TOKEN_FILE),
        warnings,
      );
      // ctx.info reads `server` lazily; bind it now that it exists.
      ctx.info = () => ({ ...server.info });
      ctx.persist = () => server.persist(stateFile);
      server.sweeper = setInterval(() => t.sweep(), 1000);
      server.sweeper.unref();
      t.publish({
        type: "listening",
        time: info.startedAt,
        http: info.http,
        tftp: info.tftp,
        dhcp: info.dhcp,
        netboot: info.netboot,
      });
      return server;
    } catch (e) {
      await dhcp?.close().catch(() => {});
      await tftp.close().catch(() => {});
      await http.close().catch(() => {});
      offFleet();
      await fleet?.close().catch(() => {});
      throw listenError(e, o);
    }
  }

  /**
   * Writes the boot-once flags (which nodes are installed) by group commit: one write in flight, the
   * next carries every change made meanwhile; resolves once a write holding this call's change is
   * durable (1,000 nodes reporting "installed" at once cost a few writes, not 1,000 in a row).
   */
  private persist(file: string): Promise<void> {
    this.saver ??= new Coalescer(() => {
      const installed = this.table
        .all()
        .filter((n) => n.installed)
        .map((n) => n.mac);
      return saveInstalled(file, installed).catch((e) =>
        this.table.publish({
          type: "warning",
          time: new Date().toISOString(),
          message: `cannot save ${file}: ${(e as Error).message}`,
        }),
      );
    });
    return this.saver.request();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    await Promise.allSettled([this.parts.dhcp?.close(), this.parts.tftp.close(), this.parts.http.close()]);
    await this.saver?.idle();
    // Every event appended so far is committed before the store closes.
    await this.parts.fleet?.close();
    this.table.publish({ type: "stopped", time: new Date().toISOString() });
  }
}

interface Network {
  binding?: Binding;
  serverIp?: string;
  netmask?: string;
}

/** Where DHCP listens and which address it names as the server (option 54, URLs). */
async function resolveNetwork(o: ServeOptions): Promise<Network> {
  const concrete = !WILDCARD.has(o.listen);
  if (o.interface) {
    const addr = await ipv4Of(o.interface);
    if (!addr)
      throw new InputError(`--interface ${o.interface}: no such interface, or it has no IPv4 address`);
    const serverIp = concrete ? o.listen : addr.address;
    if (o.dhcp === "off") return { serverIp };
    return { binding: { interface: o.interface }, serverIp, netmask: addr.netmask };
  }
  if (o.dhcp === "off") return concrete ? { serverIp: o.listen } : {};
  if (!concrete)
    throw new InputError(
      `--dhcp ${o.dhcp} needs --interface IF or --listen ADDR (the provisioning network's address)`,
    );
  const owner = interfaceWith(o.listen);
  if (!owner) throw new InputError(`--listen ${o.listen}: no interface has this address`);
  // Bound to the interface: a socket bound to an address never sees a DISCOVER (see dhcp4/native.ts).
  return { binding: { interface: owner.name }, serverIp: o.listen, netmask: owner.netmask };
}

async function dhcpMode(o: ServeOptions, serverIp: string, netmask: string | undefined): Promise<Dhcp4Mode> {
  if (o.dhcp !== "full") return { kind: "proxy" };
  const range = o.dhcpRange ? parseRange(o.dhcpRange) : undefined;
  if (!range)
    throw new InputError(
      `--dhcp-range ${o.dhcpRange ?? "(missing)"}: expected A-B, two IPv4 addresses, A <= B`,
    );
  const store = new JsonFileLeaseStore(path.join(o.stateDir, "leases.json"));
  return {
    kind: "full",
    config: { serverIp, subnetMask: netmask ?? "255.255.255.0", leaseTime: o.leaseSeconds ?? 3600 },
    table: new LeaseTable(range, await store.load()),
    store,
  };
}

/** A node event of the table as the fleet store keeps it (the table stays the hot path). */
function toFleet(fleet: ServeFleet, e: ServeEvent): void {
  let seen: SeenEvent;
  if (e.type === "node-state")
    seen = {
      type: e.type,
      time: e.time,
      state: e.state,
      body: { from: e.from, input: e.input, detail: e.detail, hint: e.hint, durationMs: e.durationMs },
    };
  else if (e.type === "node-progress" || e.type === "node-unexpected")
    seen = {
      type: e.type,
      time: e.time,
      body: { state: e.state, input: e.input, detail: e.detail, ...("bytes" in e ? { bytes: e.bytes } : {}) },
    };
  else return;
  fleet.record(e.mac, seen).catch(() => {
    // said by the fleet's own problem report; the intake waits on it through settled()
  });
}

/** Files from the first source that has them (--files before --ipxe-dir). */
function layeredSource(sources: TftpSource[]): TftpSource {
  return {
    async open(name) {
      let last: unknown = Object.assign(new Error("file not found"), { code: "ENOENT" });
      for (const s of sources) {
        try {
          return await s.open(name);
        } catch (e) {
          last = e;
          const code = (e as NodeJS.ErrnoException).code;
          if (code !== "ENOENT" && code !== "ENOTDIR") throw e;
        }
      }
      throw last;
    },
  };
}

function tftpDone(t: NodeTable, attribution: Attribution, e: TransferEvent): void {
  t.publish({
    type: "transfer",
    protocol: "tftp",
    time: new Date().toISOString(),
    client: e.client,
    file: e.file,
    outcome: e.outcome,
    bytes: e.bytes,
    durationMs: Math.round(e.durationMs),
    retransmits: e.retransmits,
    blksize: e.blksize,
    windowsize: e.windowsize,
    ...(e.detail ? { detail: e.detail } : {}),
  });
  const mac = attribution.lookup(e.client.split(":")[0] ?? "");
  if (!mac) return;
  const took = `${Math.round(e.durationMs)} ms`;
  if (e.outcome === "completed")
    t.input(
      mac,
      "tftp-done",
      `${e.file}: ${e.bytes} bytes in ${took}, ${e.retransmits} retransmits`,
      e.bytes,
    );
  else
    t.input(
      mac,
      "tftp-failed",
      `${e.file}: ${e.outcome}${e.detail ? ` (${e.detail})` : ""} after ${took}`,
      e.bytes,
    );
}

function dhcpEvent(t: NodeTable, attribution: Attribution, e: Dhcp4Event): void {
  if (e.type === "send-error") {
    t.publish({
      type: "warning",
      time: new Date().toISOString(),
      message: `DHCP reply to ${e.mac} not sent: ${e.reason}`,
    });
    return;
  }
  if (e.type !== "reply") return;
  if (e.yiaddr !== "0.0.0.0") attribution.learn(e.yiaddr, e.mac);
  if (!e.bootFile) return; // a lease without boot information (the live system, the installed OS)
  const what = `${DHCP_NAMES[e.request ?? 0] ?? e.request} -> ${DHCP_NAMES[e.reply ?? 0] ?? e.reply}`;
  const toIpxe = /\/boot(\.ipxe|\/)/.test(e.bootFile);
  t.input(
    e.mac,
    toIpxe ? "ipxe-dhcp" : "dhcp",
    `${what}, boot file ${e.bootFile}${e.yiaddr !== "0.0.0.0" ? `, address ${e.yiaddr}` : ""}`,
  );
}

/** Port and permission problems as input errors that say what to do. */
function listenError(e: unknown, o: ServeOptions): unknown {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "EADDRINUSE")
    return new InputError(
      `a port is already in use (${err.message}): another DHCP/TFTP/HTTP server runs here? (--tftp-port ${o.tftpPort}, --http-port ${o.httpPort})`,
    );
  if (err.code === "EACCES" || err.code === "EPERM")
    return new InputError(
      `${err.message}: ports below 1024 and --interface need root (or CAP_NET_BIND_SERVICE and CAP_NET_RAW)`,
    );
  if (err.code === "EADDRNOTAVAIL")
    return new InputError(`--listen ${o.listen}: not an address of this host`);
  if (err.code === "ENODEV") return new InputError(`--interface ${o.interface}: ${err.message}`);
  return e;
}
