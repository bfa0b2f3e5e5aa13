// Which node an address is. TFTP requests and the live system's downloads carry no MAC, only a
// source address: the server learns address -> MAC from its own leases (full DHCP), from each
// per-node script request, and falls back on the kernel's neighbour table (the client ARPed for us
// before it sent anything, so its entry is there on the same L2 segment).
import { readFileSync } from "node:fs";

const MAX_ENTRIES = 65_536;
const ARP_FILE = "/proc/net/arp";

export class Attribution {
  private readonly byIp = new Map<string, string>();
  private arp = new Map<string, string>();
  private arpReadAt = 0;

  constructor(
    private readonly arpFile = ARP_FILE,
    private readonly now: () => number = Date.now,
  ) {}

  learn(ip: string, mac: string): void {
    const key = plainIp(ip);
    if (!key || key === "0.0.0.0") return;
    this.byIp.delete(key);
    this.byIp.set(key, mac);
    // Oldest first out: bounded however many addresses a big or hostile network shows us.
    if (this.byIp.size > MAX_ENTRIES) {
      const oldest = this.byIp.keys().next().value;
      if (oldest !== undefined) this.byIp.delete(oldest);
    }
  }

  lookup(ip: string): string | undefined {
    const key = plainIp(ip);
    return this.byIp.get(key) ?? this.fromArp(key);
  }

  private fromArp(ip: string): string | undefined {
    if (this.now() - this.arpReadAt > 1000) {
      this.arpReadAt = this.now();
      this.arp = readArp(this.arpFile);
    }
    return this.arp.get(ip);
  }
}

/** "::ffff:10.0.0.5" -> "10.0.0.5" (Node reports IPv4 clients of a dual-stack socket that way). */
export const plainIp = (ip: string) => ip.replace(/^::ffff:/i, "");

function readArp(file: string): Map<string, string> {
  const out = new Map<string, string>();
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return out;
  }
  // IP address  HW type  Flags  HW address  Mask  Device
  for (const line of text.split("\n").slice(1, 4097)) {
    const [ip, , flags, mac] = line.trim().split(/\s+/);
    if (
      ip &&
      mac &&
      flags !== "0x0" &&
      /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) &&
      mac !== "00:00:00:00:00:00"
    )
      out.set(ip, mac);
  }
  return out;
}
