// Sends a file of datagrams (u16 length, bytes; written by the fuzz test's mutators) at a server,
// from a pool of source ports renewed every `renewEvery` packets, paced in small batches so the
// server's receive buffer, not this sender, decides what is read.
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";

export interface BlastConfig {
  file: string;
  host: string;
  port: number;
  sockets: number;
  renewEvery: number;
  broadcast?: boolean;
  /** Packets per batch; a 1 ms pause follows each. */
  batch?: number;
}

export function readDatagrams(file: string): Buffer[] {
  const b = readFileSync(file);
  const out: Buffer[] = [];
  for (let at = 0; at + 2 <= b.length; ) {
    const n = b.readUInt16BE(at);
    out.push(b.subarray(at + 2, at + 2 + n));
    at += 2 + n;
  }
  return out;
}

export function writeDatagrams(packets: Buffer[]): Buffer {
  return Buffer.concat(
    packets.flatMap((p) => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(p.length);
      return [len, p];
    }),
  );
}

const open = (broadcast: boolean) =>
  new Promise<Socket>((resolve) => {
    const s = createSocket("udp4");
    s.on("error", () => {}); // ICMP port unreachable and the like: a fuzzer does not care
    s.on("message", () => {});
    s.bind(0, () => {
      if (broadcast) s.setBroadcast(true);
      resolve(s);
    });
  });

export async function blast(c: BlastConfig): Promise<{ sent: number; sendErrors: number; ms: number }> {
  const packets = readDatagrams(c.file);
  const pool = () => Promise.all(Array.from({ length: c.sockets }, () => open(c.broadcast ?? false)));
  let sockets = await pool();
  let sent = 0;
  let sendErrors = 0;
  const t = performance.now();
  const batch = c.batch ?? 50;
  for (let i = 0; i < packets.length; i += batch) {
    await Promise.all(
      packets.slice(i, i + batch).map(
        (p, j) =>
          new Promise<void>((resolve) =>
            (sockets[(i + j) % sockets.length] as Socket).send(p, c.port, c.host, (e) => {
              if (e) sendErrors++;
              else sent++;
              resolve();
            }),
          ),
      ),
    );
    await new Promise((r) => setTimeout(r, 1));
    if ((i + batch) % c.renewEvery < batch) {
      for (const s of sockets) s.close();
      sockets = await pool();
    }
  }
  for (const s of sockets) s.close();
  return { sent, sendErrors, ms: Math.round(performance.now() - t) };
}
