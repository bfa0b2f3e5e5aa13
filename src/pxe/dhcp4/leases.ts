// The full-DHCP address pool: leases by MAC with expiry, kept in memory and persisted through a
// small store. Time is passed in (seconds), so the table is deterministic under test.
import { promises as fs } from "node:fs";
import { writeFileAtomic } from "../../core/atomic-write.js";
import { ipFromNumber, parseIp } from "./packet.js";

export interface Lease {
  mac: string;
  ip: string;
  /** Unix seconds. An offered lease expires quickly; a bound one after the lease time. */
  expires: number;
  state: "offered" | "bound" | "declined";
}

export interface LeaseStore {
  load(): Promise<Lease[]>;
  save(leases: Lease[]): Promise<void>;
}

export interface Range {
  first: number;
  last: number;
}

/** "A-B" with A <= B, both dotted quads; undefined when malformed. */
export function parseRange(text: string): Range | undefined {
  const m = /^\s*([\d.]+)\s*-\s*([\d.]+)\s*$/.exec(text);
  if (!m) return undefined;
  const first = parseIp(m[1] as string);
  const last = parseIp(m[2] as string);
  if (first === undefined || last === undefined || first > last || last - first > 65535) return undefined;
  return { first, last };
}

export class LeaseTable {
  private byMac = new Map<string, Lease>();
  private byIp = new Map<string, Lease>();
  private cursor = 0;
  /** Whether byIp's insertion order is address order (addresses are mostly handed out ascending). */
  private ordered = true;
  private highest = -1;

  constructor(
    readonly range: Range,
    leases: Lease[] = [],
  ) {
    for (const l of leases) if (this.inRange(l.ip)) this.put(l);
  }

  inRange(ip: string): boolean {
    const n = parseIp(ip);
    return n !== undefined && n >= this.range.first && n <= this.range.last;
  }

  forMac(mac: string, now: number): Lease | undefined {
    const l = this.byMac.get(mac);
    return l && l.state !== "declined" && (l.state === "bound" || l.expires > now) ? l : undefined;
  }

  /** Whether `ip` may go to `mac`: in range and not held by another live lease or a decline. */
  available(ip: string, mac: string, now: number): boolean {
    if (!this.inRange(ip)) return false;
    const l = this.byIp.get(ip);
    return !l || l.expires <= now || (l.mac === mac && l.state !== "declined");
  }

  /** The client's previous address, else the one it asks for, else the next free one in the range. */
  pick(mac: string, requested: string | undefined, now: number): string | undefined {
    const prev = this.byMac.get(mac);
    if (prev && prev.state !== "declined" && this.available(prev.ip, mac, now)) return prev.ip;
    if (requested && this.available(requested, mac, now)) return requested;
    // Scan from where the last free address was found, so filling a large pool stays linear.
    const size = this.range.last - this.range.first + 1;
    for (let k = 0; k < size; k++) {
      const n = this.range.first + ((this.cursor + k) % size);
      const ip = ipFromNumber(n);
      if (this.available(ip, mac, now)) {
        this.cursor = (n - this.range.first + 1) % size;
        return ip;
      }
    }
    return undefined;
  }

  set(lease: Lease): void {
    const old = this.byMac.get(lease.mac);
    if (old && this.byIp.get(old.ip) === old) this.byIp.delete(old.ip);
    const holder = this.byIp.get(lease.ip);
    if (holder && holder !== lease) this.byMac.delete(holder.mac);
    this.put(lease);
  }

  release(mac: string): boolean {
    const l = this.byMac.get(mac);
    if (!l) return false;
    this.byMac.delete(mac);
    if (this.byIp.get(l.ip) === l) this.byIp.delete(l.ip);
    return true;
  }

  /** The address is in use by someone else on the wire: hold it back for `holdSeconds`. */
  decline(ip: string, now: number, holdSeconds: number): void {
    const l = this.byIp.get(ip);
    if (l) this.byMac.delete(l.mac);
    this.put({ mac: `declined:${ip}`, ip, expires: now + holdSeconds, state: "declined" });
  }

  /** Every lease by address. Sorted only when an address went in out of order since the last call. */
  all(): Lease[] {
    if (!this.ordered) {
      const sorted = [...this.byIp.entries()].sort((a, b) => (parseIp(a[0]) ?? 0) - (parseIp(b[0]) ?? 0));
      this.byIp = new Map(sorted);
      this.ordered = true;
    }
    return [...this.byIp.values()];
  }

  private put(l: Lease): void {
    this.byMac.set(l.mac, l);
    if (!this.byIp.has(l.ip)) {
      // A new key goes to the end of the map: still in order if it is the highest address so far.
      const n = parseIp(l.ip) ?? 0;
      if (n < this.highest) this.ordered = false;
      else this.highest = n;
    }
    this.byIp.set(l.ip, l);
  }
}

/** The default store: one JSON file, written atomically so a crash keeps the old or the new table. */
export class JsonFileLeaseStore implements LeaseStore {
  constructor(readonly file: string) {}

  async load(): Promise<Lease[]> {
    let text: string;
    try {
      const st = await fs.stat(this.file);
      if (st.size > 16 * 1024 * 1024) throw new Error(`${this.file}: lease file larger than 16 MiB`);
      text = await fs.readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw e;
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (e) {
      throw new Error(`${this.file}: not JSON: ${(e as Error).message}`);
    }
    const list = (data as { leases?: unknown })?.leases;
    if (!Array.isArray(list)) throw new Error(`${this.file}: no "leases" array`);
    return list.filter(isLease);
  }

  /** Compact JSON (one line per lease would cost as much to write as it saves to read). */
  async save(leases: Lease[]): Promise<void> {
    await writeFileAtomic(this.file, `${JSON.stringify({ version: 1, leases })}\n`, 0o600);
  }
}

function isLease(x: unknown): x is Lease {
  const l = x as Lease;
  return (
    typeof l?.mac === "string" &&
    typeof l.ip === "string" &&
    parseIp(l.ip) !== undefined &&
    Number.isFinite(l.expires) &&
    (l.state === "offered" || l.state === "bound" || l.state === "declined")
  );
}
