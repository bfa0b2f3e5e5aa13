// Parsers for virsh's human-readable output (run with LC_ALL=C). Tables are a header line, a line
// of dashes, then one row per line with columns separated by runs of spaces.
import type {
  AgentExecResult,
  DhcpLease,
  DomainDisk,
  DomainInterface,
  DomainState,
  IpAddress,
  LibvirtVersion,
  NetworkInfo,
  Volume,
} from "./libvirt.js";

/** Rows of a virsh table, each split on two or more spaces (single spaces stay inside a cell). */
export function tableRows(output: string): string[][] {
  const lines = output.split("\n");
  const dashes = lines.findIndex((l) => /^-{3,}\s*$/.test(l.trim()));
  return lines
    .slice(dashes + 1)
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((l) => l.split(/\s{2,}/));
}

export function parseVersion(output: string): LibvirtVersion {
  const library = /Using library: libvirt (\S+)/.exec(output)?.[1];
  if (!library) throw new Error(`unexpected virsh version output: ${output.trim()}`);
  const hv = /Running hypervisor: (\S+) (\S+)/.exec(output);
  return hv?.[1] && hv[2] ? { library, hypervisor: { name: hv[1], version: hv[2] } } : { library };
}

export function parseDomainList(output: string): { name: string; state: DomainState }[] {
  // " Id   Name   State" / " 1    web    running" / " -    db     shut off"
  return tableRows(output).flatMap((cells) => {
    const [, name, state] = cells;
    return name && state ? [{ name, state }] : [];
  });
}

export function parseNetList(output: string): NetworkInfo[] {
  return tableRows(output).flatMap(([name, state, autostart, persistent]) =>
    name && state
      ? [
          {
            name,
            active: state === "active",
            autostart: autostart === "yes",
            persistent: persistent === "yes",
          },
        ]
      : [],
  );
}

export function parseVolList(output: string): Volume[] {
  return tableRows(output).flatMap(([name, path]) => (name ? [{ name, path: path ?? "" }] : []));
}

function parseAddress(family: string, cidr: string): IpAddress | null {
  const m = /^(.+)\/(\d+)$/.exec(cidr);
  if (!m?.[1] || !m[2] || (family !== "ipv4" && family !== "ipv6")) return null;
  return { family, address: m[1], prefix: Number(m[2]) };
}

/** `virsh domifaddr`: a "-" in the name or MAC column continues the interface above. */
export function parseDomIfAddr(output: string): DomainInterface[] {
  const result: DomainInterface[] = [];
  for (const [iface, mac, family, cidr] of tableRows(output)) {
    if (!iface || !mac) continue;
    let current = result.at(-1);
    if (iface !== "-" || !current) {
      current = { iface, mac: mac === "-" ? "" : mac, addrs: [] };
      result.push(current);
    }
    const addr = family && cidr ? parseAddress(family, cidr) : null;
    if (addr) current.addrs.push(addr);
  }
  return result;
}

/** `virsh net-dhcp-leases`: the first column ("2026-01-01 10:00:00") has one inner space. */
export function parseDhcpLeases(output: string): DhcpLease[] {
  return tableRows(output).flatMap(([expiry, mac, family, cidr, hostname, clientId]) => {
    const addr = family && cidr ? parseAddress(family, cidr) : null;
    if (!expiry || !mac || !addr) return [];
    const dash = (v: string | undefined) => (v === undefined || v === "-" || v === "" ? null : v);
    return [{ expiry, mac, ...addr, hostname: dash(hostname), clientId: dash(clientId) }];
  });
}

/** `Domain 'web' defined from /tmp/x.xml` (libvirt >= 6 quotes the name; older ones did not). */
export function parseDefinedName(output: string, kind: "Domain" | "Network" | "Pool"): string | null {
  const m = new RegExp(`${kind} '?(.+?)'? defined from`).exec(output);
  return m?.[1] ?? null;
}

/** The "return" member of a guest agent reply ({"return": ...}). */
export function agentReturn(output: string): unknown {
  const reply = JSON.parse(output) as { return?: unknown };
  if (!reply || typeof reply !== "object" || !("return" in reply)) {
    throw new Error(`guest agent reply without "return": ${output.trim()}`);
  }
  return reply.return;
}

type ExecStatus = {
  exited?: boolean;
  exitcode?: number;
  signal?: number;
  "out-data"?: string;
  "err-data"?: string;
};

/** guest-exec-status's reply once exited; null while the process still runs. */
export function parseExecStatus(ret: unknown): AgentExecResult | null {
  const s = (ret ?? {}) as ExecStatus;
  if (!s.exited) return null;
  const decode = (b64: string | undefined) => (b64 ? Buffer.from(b64, "base64").toString("utf8") : "");
  return {
    exitCode: typeof s.exitcode === "number" ? s.exitcode : null,
    signal: typeof s.signal === "number" ? s.signal : null,
    stdout: decode(s["out-data"]),
    stderr: decode(s["err-data"]),
  };
}

export function parseDomBlkList(output: string): DomainDisk[] {
  // " Type   Device   Target   Source" / " file   disk     vda      /var/lib/kvmstrap/vms/web.qcow2"
  return tableRows(output).flatMap((cells) => {
    const [type, device, target, source] = cells;
    return type && device && target
      ? [{ type, device, target, source: source && source !== "-" ? source : null }]
      : [];
  });
}

/** domjobinfo's "Job type:         Completed" lines as { "Job type": "Completed" }. */
export function parseJobInfo(output: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const line of output.split("\n")) {
    const m = /^([^:]+):\s+(.*)$/.exec(line.trim());
    if (m?.[1] && m[2] !== undefined) info[m[1].trim()] = m[2].trim();
  }
  return info;
}
