// The transport: dgram sockets for ports 67 and 4011, either bound to one interface (the product
// path, see native.ts for why) or to one address (loopback tests, --dhcp off scripts).
import dgram from "node:dgram";
import { EventEmitter } from "node:events";
import type { Destination } from "./destination.js";
import { loadDeviceSocketAddon } from "./native.js";

export type Binding = { interface: string } | { address: string };

export interface Datagram {
  data: Buffer;
  from: Destination;
  /** The local port it arrived on (67 or 4011, or the test's stand-ins). */
  port: number;
}

export interface Transport {
  on(event: "message", fn: (d: Datagram) => void): this;
  on(event: "error", fn: (e: Error) => void): this;
  send(port: number, data: Buffer, to: Destination): Promise<void>;
  close(): Promise<void>;
}

class DgramTransport extends EventEmitter implements Transport {
  constructor(private sockets: Map<number, dgram.Socket>) {
    super();
    for (const [port, s] of sockets) {
      s.on("message", (data, rinfo) =>
        this.emit("message", { data, from: { address: rinfo.address, port: rinfo.port }, port }),
      );
      s.on("error", (e) => this.emit("error", e));
    }
  }

  send(port: number, data: Buffer, to: Destination): Promise<void> {
    const s = this.sockets.get(port) ?? [...this.sockets.values()][0];
    return new Promise((resolve, reject) =>
      s?.send(data, to.port, to.address, (e) => (e ? reject(e) : resolve())),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.sockets.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

function bindSocket(opts: dgram.BindOptions): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket({ type: "udp4", reuseAddr: true });
    s.once("error", reject);
    s.bind(opts, () => {
      s.off("error", reject);
      s.setBroadcast(true);
      resolve(s);
    });
  });
}

/** Opens one socket per port. With an interface, each only sees and sends on that interface. */
export async function openTransport(binding: Binding, ports: number[]): Promise<Transport> {
  const sockets = new Map<number, dgram.Socket>();
  try {
    if ("interface" in binding) {
      const addon = await loadDeviceSocketAddon();
      for (const port of ports)
        sockets.set(port, await bindSocket({ fd: addon.openDeviceUdp(binding.interface, port) }));
    } else {
      for (const port of ports) sockets.set(port, await bindSocket({ address: binding.address, port }));
    }
  } catch (e) {
    for (const s of sockets.values()) s.close();
    throw e;
  }
  return new DgramTransport(sockets);
}
