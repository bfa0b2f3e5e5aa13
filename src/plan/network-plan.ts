// Bridges, bonds and VLANs, rendered for the network stack the host really uses, then reloaded
// under the confirm-or-revert timer (every action here has effect "network"). A bridge takes its
// uplink's MAC in the same step, so DHCP hands it the address the admin is connected to.
import { matchNics } from "../answer/match.js";
import type { Answer, NicMatch } from "../answer/schema.js";
import type { PlanContext } from "./context.js";
import { currentOf, isRefused, planCommand, planFile } from "./context.js";
import { renderIfupdown2 } from "./render/ifupdown2.js";
import { renderNetplan } from "./render/netplan.js";
import { NETWORKD_DIR, networkdFileName, renderNetworkd } from "./render/networkd.js";
import { NM_DIR, nmUuid, renderNmKeyfiles } from "./render/networkmanager.js";
import {
  netdevShadows,
  networkdSteals,
  takeOverIfupdown,
  takeOverNetplan,
  takeOverNetworkd,
  takeOverNmProfile,
} from "./render/takeover.js";
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
  const nic = (rule: NicMatch): { name: string; mac?: string } | null => {
    const m = matchNics(rule, ctx.report);
    const n = m.chosen[0];
    // A rule that matched nothing, or a NIC without an interface, is refused by the rule set.
    if (m.error || !n?.name) return null;
    return { name: n.name, mac: n.mac ?? undefined };
  };
  const bonds = net.bonds.map((b) => {
    const ifaces = b.interfaces
      .map((r) => nic(r))
      .filter((x): x is { name: string; mac?: string } => x !== null);
    for (const p of ifaces) ports.set(p.name, p.mac);
    return { name: b.name, interfaces: ifaces.map((p) => p.name), mode: b.mode, ...addressing(b) };
  });
  const bridges = net.bridges.map((b) => {
    const members: { name: string; mac?: string }[] = [];
    if (b.uplink) {
      const u = nic(b.uplink);
      if (u) members.push(u);
    }
    (b.ports ?? []).forEach((p) => {
      if ("bond" in p) members.push({ name: p.bond });
      else {
        const n = nic(p);
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
  const vlans = net.vlans.map((v) => {
    let link = typeof v.link === "string" ? v.link : null;
    if (typeof v.link !== "string") link = nic(v.link)?.name ?? null;
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
  const takeover = takeOverExisting(ctx, stack, desired, files);
  const summary = `${stack}: ${desired.bridges.map((b) => `${b.name} over ${b.ports.join("+") || "nothing"}`).join(", ") || "bonds and VLANs"}`;
  const changes = [...takeover.files, ...files].filter((f) => currentOf(ctx, f.path) !== f.content);
  if (changes.length === 0 && takeover.removals.length === 0) return;

  // Reverted newest first: these no-ops run their undo last, once the previous files are back:
  // the stack reloads them, then (NetworkManager) the profiles we turned off come up again.
  for (const r of takeover.reactivate) {
    planCommand(ctx, {
      id: `network.reactivate-on-revert.${r.port}`,
      argv: ["true"],
      undo: ["nmcli", "connection", "up", "uuid", r.uuid, "ifname", r.port],
      effect: "network",
      summary: `on revert: bring ${r.port}'s previous profile (${r.uuid}) up again`,
    });
  }
  planCommand(ctx, {
    id: "network.reload-on-revert",
    argv: ["true"],
    undo: reload,
    effect: "network",
    summary: "on revert: reload the previous network configuration",
  });
  for (const r of takeover.removals) {
    ctx.actions.push({
      kind: "remove-file",
      id: `network.takeover.${r.path}`,
      path: r.path,
      previous: r.previous,
      effect: "network",
      summary: `${stack}: remove ${r.why}`,
    });
  }
  for (const f of takeover.files) {
    planFile(ctx, {
      id: `network.takeover.${f.path}`,
      path: f.path,
      content: f.content,
      effect: "network",
      mode: f.mode,
      summary: `${stack}: ${f.why}`,
    });
  }
  for (const f of files) {
    planFile(ctx, {
      id: `network.file.${f.path}`,
      path: f.path,
      content: f.content,
      mode: f.mode,
      effect: "network",
      summary,
    });
  }
  planCommand(ctx, {
    id: "network.reload",
    argv: reload,
    effect: "network",
    summary: `apply with ${reload.join(" ")}`,
  });
  // A reloaded NetworkManager profile is only a profile: the new ones are activated, masters first
  // (a port's activation needs its master), and take the devices from the old ones.
  for (const name of takeover.activate) {
    planCommand(ctx, {
      id: `network.activate.${name}`,
      argv: ["nmcli", "connection", "up", "uuid", nmUuid(`kvmstrap-${name}`)],
      effect: "network",
      summary: `activate the kvmstrap-${name} profile`,
    });
  }
}

type Takeover = {
  files: { path: string; content: string; mode?: number; why: string }[];
  removals: { path: string; previous: string; why: string }[];
  reactivate: { uuid: string; port: string }[];
  activate: string[];
};

/** Edits to the host's existing configuration so the stack applies ours for the interfaces we own. */
function takeOverExisting(
  ctx: PlanContext,
  stack: string,
  desired: NetworkDesired,
  ours: { path: string }[],
): Takeover {
  const out: Takeover = { files: [], removals: [], reactivate: [], activate: [] };
  const mine = new Set(ours.map((f) => f.path));
  const names = [...desired.ports, ...desired.bonds, ...desired.bridges, ...desired.vlans].map((d) => d.name);
  const existing = (dir: string) =>
    (ctx.report.system.configFiles ?? [])
      .filter((p) => p.startsWith(`${dir}/`) && !mine.has(p))
      .flatMap((p) => {
        const content = currentOf(ctx, p);
        return content === null ? [] : [{ path: p, content }];
      });
  if (stack === "netplan") {
    for (const f of existing("/etc/netplan")) {
      const content = takeOverNetplan(f.content, new Set(names), desired.ports);
      if (content !== f.content)
        out.files.push({
          path: f.path,
          content,
          mode: 0o600,
          why: `${f.path}: no addressing left on ${names.join(", ")}`,
        });
    }
  }
  if (stack === "networkd") {
    const ourFile = (n: string) => networkdFileName(n, "network");
    for (const f of existing(NETWORKD_DIR).filter((x) => x.path.endsWith(".netdev"))) {
      const name = f.path.slice(NETWORKD_DIR.length + 1);
      const shadows = netdevShadows(name, f.content, names, (n) => networkdFileName(n, "netdev"));
      if (shadows)
        out.removals.push({ path: f.path, previous: f.content, why: `${f.path} defines ${shadows} first` });
    }
    for (const f of existing(NETWORKD_DIR).filter((x) => x.path.endsWith(".network"))) {
      const name = f.path.slice(NETWORKD_DIR.length + 1);
      const content = takeOverNetworkd(name, f.content, names, ourFile);
      if (content !== f.content)
        out.files.push({
          path: f.path,
          content,
          why: `${f.path} no longer matches ${networkdSteals(name, f.content, names, ourFile).join(", ")} before kvmstrap's files`,
        });
    }
  }

  if (stack === "ifupdown2") {
    const set = new Set(names);
    const candidates = [
      { path: NETWORK_PATHS.interfaces, content: currentOf(ctx, NETWORK_PATHS.interfaces) ?? "" },
      ...existing("/etc/network/interfaces.d"),
    ];
    for (const f of candidates) {
      const content = takeOverIfupdown(f.content, set);
      if (content === f.content) continue;
      // /etc/network/interfaces may also need its source line: one edit carries both.
      const sourced = ours.find((o) => o.path === f.path) as { content: string } | undefined;
      if (sourced) sourced.content = takeOverIfupdown(sourced.content, set);
      else
        out.files.push({
          path: f.path,
          content,
          why: `${f.path}: stanzas for ${names.join(", ")} moved to kvmstrap`,
        });
    }
  }
  if (stack === "networkmanager") {
    const seen = new Set<string>();
    for (const f of existing(NM_DIR)) {
      const t = takeOverNmProfile(f.content, desired.ports);
      if (!t) continue;
      if (t.content !== f.content)
        out.files.push({
          path: f.path,
          content: t.content,
          mode: 0o600,
          why: `${f.path}: no autoconnect on ${t.port}`,
        });
      if (t.autoconnect && t.uuid && !seen.has(t.port)) {
        seen.add(t.port);
        out.reactivate.push({ uuid: t.uuid, port: t.port });
      }
    }
    const masters = new Set(
      [...desired.bridges, ...desired.bonds].flatMap((m) => ("ports" in m ? m.ports : m.interfaces)),
    );
    out.activate = [
      ...desired.bridges.map((b) => b.name),
      ...desired.bonds.filter((b) => !masters.has(b.name)).map((b) => b.name),
      ...desired.vlans.map((v) => v.name),
    ];
  }
  return out;
}

/** The files a network plan may write, so the CLI can read their current content first. */
export function networkPaths(): string[] {
  return [NETWORK_PATHS.netplan, NETWORK_PATHS.ifupdown2, NETWORK_PATHS.interfaces];
}
