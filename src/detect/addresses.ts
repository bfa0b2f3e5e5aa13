// The addresses of each interface. Neither /sys nor /proc lists IPv4 addresses by interface with their
// prefix (fib_trie names no interface), so on the live host they come from `ip -j addr` through the
// CommandRunner port; on any other root (a snapshot, a test tree) running `ip` would describe the
// machine running kvmstrap, so there they are "unknown".
import { z } from "zod";
import type { CommandRunner } from "../host/commands.js";
import type { DetectContext } from "./sysfs.js";
import type { NicAddress, NicReport } from "./types.js";

export const ADDRESS_SOURCE = "ip -j addr show";

const ipAddr = z.array(
  z.object({
    ifname: z.string(),
    addr_info: z
      .array(
        z.object({
          family: z.string(),
          local: z.string().optional(),
          prefixlen: z.number().int().optional(),
          scope: z.string().optional(),
        }),
      )
      .optional(),
  }),
);

/** Addresses by interface name, or null when they cannot be known (with a warning saying why). */
export async function readAddresses(
  ctx: DetectContext,
  live: boolean,
  runner: CommandRunner | undefined,
): Promise<Map<string, NicAddress[]> | null> {
  if (!live || runner === undefined) return null;
  const warn = (message: string) => {
    ctx.warnings.push({ path: ADDRESS_SOURCE, message: `interface addresses unknown: ${message}` });
    return null;
  };
  const r = await runner.run("ip", ["-j", "addr", "show"], { timeoutMs: 5000, maxBytes: 4 << 20 });
  if (r.timedOut) return warn("ip did not answer in 5 s");
  if (r.overflowed) return warn("ip's output passed 4 MiB");
  if (r.exitCode === undefined) return warn("ip could not be run (is iproute2 installed?)");
  if (r.exitCode !== 0) return warn(`ip failed: ${r.stderr.trim().slice(0, 200) || `exit ${r.exitCode}`}`);
  let parsed: z.infer<typeof ipAddr>;
  try {
    parsed = ipAddr.parse(JSON.parse(r.stdout));
  } catch {
    return warn("ip's JSON was not understood");
  }
  const out = new Map<string, NicAddress[]>();
  for (const link of parsed) {
    const addrs: NicAddress[] = [];
    for (const a of link.addr_info ?? []) {
      if ((a.family !== "inet" && a.family !== "inet6") || !a.local || a.prefixlen === undefined) continue;
      addrs.push({ family: a.family, address: a.local, prefixLength: a.prefixlen, scope: a.scope ?? null });
    }
    out.set(link.ifname, addrs);
  }
  return out;
}

/**
 * Fills each NIC's addresses. A netdev `ip` did not list (it left between the two reads, or /sys shows
 * another namespace) is "unknown"; so is a PCI function without a netdev here (its netdev may live in
 * another network namespace, with addresses).
 */
export function attachAddresses(nics: NicReport[], byName: Map<string, NicAddress[]> | null): void {
  for (const n of nics) {
    if (byName === null || n.name === null) n.addresses = "unknown";
    else {
      const found = byName.get(n.name);
      n.addresses = found ?? "unknown";
      if (found) n.sources.addresses = ADDRESS_SOURCE;
    }
  }
}
