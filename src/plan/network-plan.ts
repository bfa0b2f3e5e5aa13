// Bridges, bonds and VLANs, rendered for the network stack the host really uses, then reloaded
// under the confirm-or-revert timer (every action here has effect "network"). A bridge takes its
// uplink's MAC in the same step, so DHCP hands it the address the admin is connected to.
import { matchNics } from "../answer/match.js";
import type { Answer, NicMatch } from "../answer/schema.js";
import type { PlanContext } from "./context.js";
import { currentOf, isRefused, planCommand, planFile } from "./context.js";
import { renderIfupdown2 } from "./render/ifupdown2.js";
import { renderNetplan } from "./render/netplan.js";
import { renderNetworkd } from "./render/networkd.js";
import { renderNmKeyfiles } from "./render/networkmanager.js";
import type { Addressing, NetworkDesired } from "./render/types.js";

export const NETWORK_PATHS = {
  netplan: "/etc/netplan/60-kvmstrap.yaml",
  ifupdown2: "/etc/network/interfaces.d/kvmstrap",
  interfaces: "/etc/network/interfaces",
} as const;

type Addr = NonNullable<Answer["network"]>["bridges"][number];

function addressing(a: Pick<Addr, "addresses" | "gateway" | "dns" | "mtu" | "routes">): Addressing {
  return {
    dhcp: a.addresses === "dhcp",
    addresses: Array.isArray(a.addresses) ? a.addresses : [],
    gateway: a.gateway,
    dns: a.dns,
    mtu: a.mtu,
    routes: a.routes,
  };
}

/** Resolves the answer's match rules into concrete interface names. */
export function resolveNetwork(ctx: PlanContext): NetworkDesired | null {
  const net = ctx.answer.network;
  if (!net || net.bridges.length + net.bonds.length + net.vlans.length === 0) return null;
  const ports = new Map<string, string | undefined>();
  const nic = (rule: NicMatch, path: string): { name: string; mac?: string } | null => {
    const m = matchNics(rule, ctx.report);
    const n = m.chosen[0];
    // A rule that matched nothing, or a NIC without an interface, is refused by the rule set.
    if (m.error || !n?.name) return null;
    return { name: n.name, mac: n.mac ?? undefined };
  };
  const bonds = net.bonds.map((b, i) => {
    const ifaces = b.interfaces
      .map((r, j) => nic(r, `network.bonds[${i}].interfaces[${j}]`))
      .filter((x): x is { name: string; mac?: string } => x !== null);
    for (const p of ifaces) ports.set(p.name, p.mac);
    return { name: b.name, interfaces: ifaces.map((p) => p.name), mode: b.mode, ...addressing(b) };
  });
  const bridges = net.bridges.map((b, i) => {
    const members: { name: string; mac?: string }[] = [];
    if (b.uplink) {
      const u = nic(b.uplink, `network.bridges[${i}].uplink`);
      if (u) members.push(u);
    }
    (b.ports ?? []).forEach((p, j) => {
      if ("bond" in p) members.push({ name: p.bond });
      else {
        const n = nic(p, `network.bridges[${i}].ports[${j}]`);
        if (n) members.push(n);
      }
    });
    for (const m of members) if (!bonds.some((bd) => bd.name === m.name)) ports.set(m.name, m.mac);
    return {
      name: b.name,
      ports: members.map((m) => m.name),
      mac: members[0]?.mac,
      stp: b.stp,
      vlanAware: b.vlanAware,
      ...addressing(b),
    };
  });
  const vlans = net.vlans.map((v, i) => {
    let link = typeof v.link === "string" ? v.link : null;
    if (typeof v.link !== "string") link = nic(v.link, `network.vlans[${i}].link`)?.name ?? null;
    return { name: v.name, id: v.id, link: link ?? "", ...addressing(v) };
  });
  return { bridges, bonds, vlans, ports: [...ports].map(([name, mac]) => ({ name, mac })) };
}

const RELOAD: Record<string, string[]> = {
  netplan: ["netplan", "apply"],
  ifupdown2: ["ifreload", "-a"],
  networkd: ["networkctl", "reload"],
  networkmanager: ["nmcli", "connection", "reload"],
};

export function planNetwork(ctx: PlanContext): void {
  // Half a network (a bridge without its uplink) can cut the host off: any refusal holds it all back.
  if (isRefused(ctx, "network")) return;
  const desired = resolveNetwork(ctx);
  if (!desired) return;
  const chosen = ctx.answer.network?.stack ?? "auto";
  const detected = ctx.report.system.networkStack;
  const stack = chosen === "auto" ? detected : chosen;
  // Refused by the rule set (network.stack-unknown).
  if (stack === "unknown" || stack === "ifupdown") return;
  const reload = RELOAD[stack] ?? [];
  // Reverted in reverse order: this no-op runs its undo last, reloading the restored configuration.
  planCommand(ctx, {
    id: "network.reload-on-revert",
    argv: ["true"],
    undo: reload,
    effect: "network",
    summary: "on revert: reload the previous network configuration",
  });
  let changed = false;
  const files: { path: string; content: string; mode?: number }[] = [];
  if (stack === "netplan")
    files.push({ path: NETWORK_PATHS.netplan, content: renderNetplan(desired), mode: 0o600 });
  if (stack === "ifupdown2") {
    files.push({ path: NETWORK_PATHS.ifupdown2, content: renderIfupdown2(desired) });
    const interfaces = currentOf(ctx, NETWORK_PATHS.interfaces) ?? "";
    if (!/^\s*source(-directory)?\s+\/etc\/network\/interfaces\.d/m.test(interfaces)) {
      files.push({
        path: NETWORK_PATHS.interfaces,
        content: `${interfaces}${interfaces.endsWith("\n") || !interfaces ? "" : "\n"}source /etc/network/interfaces.d/*\n`,
      });
    }
  }
  if (stack === "networkd") files.push(...renderNetworkd(desired));
  if (stack === "networkmanager")
    files.push(...renderNmKeyfiles(desired).map((f) => ({ ...f, mode: 0o600 })));
  for (const f of files) {
    changed =
      planFile(ctx, {
        id: `network.file.${f.path}`,
        path: f.path,
        content: f.content,
        mode: f.mode,
        effect: "network",
        summary: `${stack}: ${desired.bridges.map((b) => `${b.name} over ${b.ports.join("+") || "nothing"}`).join(", ") || "bonds and VLANs"}`,
      }) || changed;
  }
  if (changed) {
    planCommand(ctx, {
      id: "network.reload",
      argv: reload,
      effect: "network",
      summary: `apply with ${reload.join(" ")}`,
    });
  } else {
    ctx.actions.splice(
      ctx.actions.findIndex((a) => a.id === "network.reload-on-revert"),
      1,
    );
  }
}

/** The files a network plan may write, so the CLI can read their current content first. */
export function networkPaths(): string[] {
  return [NETWORK_PATHS.netplan, NETWORK_PATHS.ifupdown2, NETWORK_PATHS.interfaces];
}
