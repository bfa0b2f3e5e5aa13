// Wires a transport, the codec, a responder and a Booter: decode, ask the policy, answer.
// Every datagram ends in exactly one event (reply, ignore or decode-error), so a caller can
// build a per-node timeline or a debug trace without parsing packets again.
import { Coalescer } from "../../core/coalesce.js";
import { type BootDecision, type Booter, describeClient } from "./client.js";
import { type Destination, PXE_PORT, SERVER_PORT } from "./destination.js";
import { type FullConfig, respondFull } from "./full.js";
import type { LeaseStore, LeaseTable } from "./leases.js";
import { decodePacket, encodePacket, messageType } from "./packet.js";
import { respondProxy } from "./proxy.js";
import { type Binding, type Datagram, openTransport, type Transport } from "./socket.js";

export type Dhcp4Event =
  | {
      type: "reply";
      mac: string;
      request: number | undefined;
      reply: number | undefined;
      to: Destination;
      bootFile?: string;
      yiaddr: string;
    }
  | { type: "ignore"; mac?: string; reason: string }
  | { type: "send-error"; mac: string; to: Destination; reason: string }
  | { type: "decode-error"; from: Destination; reason: string };

export type Dhcp4Mode =
  | { kind: "proxy" }
  | { kind: "full"; config: FullConfig; table: LeaseTable; store?: LeaseStore };

export interface Dhcp4ServerOptions {
  binding: Binding;
  /** Our address on the served network (option 54, default TFTP server). */
  serverIp: string;
  mode: Dhcp4Mode;
  booter: Booter;
  onEvent?: (e: Dhcp4Event) => void;
  /** Unix seconds; injectable for tests. */
  now?: () => number;
}

export class Dhcp4Server {
  /** Lease saves by group commit: one in flight, then the table as it is by then, once. */
  private readonly saver: Coalescer | undefined;

  private constructor(
    private opts: Dhcp4ServerOptions,
    private transport: Transport,
  ) {
    const mode = opts.mode;
    if (mode.kind === "full" && mode.store) {
      const store = mode.store;
      this.saver = new Coalescer(() =>
        store
          .save(mode.table.all())
          .catch((e) => this.emit({ type: "ignore", reason: `lease store: ${(e as Error).message}` })),
      );
    }
    transport.on("message", (d) => {
      this.handle(d).catch((e) => this.emit({ type: "ignore", reason: `internal: ${(e as Error).message}` }));
    });
    transport.on("error", (e) => this.emit({ type: "ignore", reason: `socket: ${e.message}` }));
  }

  static async start(opts: Dhcp4ServerOptions): Promise<Dhcp4Server> {
    const ports = opts.mode.kind === "proxy" ? [SERVER_PORT, PXE_PORT] : [SERVER_PORT];
    return new Dhcp4Server(opts, await openTransport(opts.binding, ports));
  }

  /** Waits for pending lease writes, then closes the sockets. */
  async close(): Promise<void> {
    await this.saver?.idle();
    await this.transport.close();
  }

  private emit(e: Dhcp4Event): void {
    this.opts.onEvent?.(e);
  }

  private async handle(d: Datagram): Promise<void> {
    const decoded = decodePacket(d.data);
    if (!decoded.ok) {
      this.emit({ type: "decode-error", from: d.from, reason: decoded.error.reason });
      return;
    }
    const req = decoded.value;
    const client = describeClient(req);
    let decision: BootDecision;
    try {
      decision = await this.opts.booter.decide(client);
    } catch (e) {
      decision = { kind: "ignore", reason: `boot policy failed: ${(e as Error).message}` };
    }
    const mode = this.opts.mode;
    const now = (this.opts.now ?? (() => Math.floor(Date.now() / 1000)))();
    const res =
      mode.kind === "proxy"
        ? respondProxy({ serverIp: this.opts.serverIp }, req, client, decision, d.port, d.from.port)
        : respondFull(
            { ...mode.config, serverIp: this.opts.serverIp },
            mode.table,
            req,
            client,
            decision,
            d.from.port,
            now,
          );
    // Not awaited: the reply does not wait for the disk (as before); close() waits for the last save.
    if (mode.kind === "full" && "changed" in res && res.changed) void this.saver?.request();
    if ("ignore" in res) {
      this.emit({ type: "ignore", mac: client.mac, reason: res.ignore });
      return;
    }
    try {
      await this.transport.send(d.port, encodePacket(res.reply), res.to);
    } catch (e) {
      this.emit({ type: "send-error", mac: client.mac, to: res.to, reason: (e as Error).message });
      return;
    }
    this.emit({
      type: "reply",
      mac: client.mac,
      request: messageType(req),
      reply: messageType(res.reply),
      to: res.to,
      yiaddr: res.reply.yiaddr,
      ...(res.reply.file || res.reply.options.has(67)
        ? { bootFile: res.reply.file || res.reply.options.get(67)?.toString("latin1") }
        : {}),
    });
  }
}
