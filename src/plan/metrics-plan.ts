// The answer's metrics: as kvmstrap-metrics.service, a long-running `kvmstrap metrics` on the
// management address (the answer's, else the one the host report reads on the NIC with the default
// route; none found: refused, never a wildcard by default). The unit file is written (its inverse
// restores what was there), the service enabled and started (its inverse disables and stops it), and
// a changed unit restarts the running exporter; on undo, systemd reloads and restarts it again once
// the old file is back (undo runs in reverse: those are the undos of steps planned before the write).
// A section that left the answer stops, disables and removes the unit, each step with its inverse.
import { managementAddressesOf } from "../answer/rules/consoles.js";
import type { Metrics } from "../answer/schema-metrics.js";
import { SYSTEMD_UNIT_DIR } from "../detect/system.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile, refuse } from "./context.js";

export const METRICS_UNIT = "kvmstrap-metrics.service";
export const METRICS_UNIT_PATH = `${SYSTEMD_UNIT_DIR}/${METRICS_UNIT}`;

/** ADDR:PORT as `kvmstrap metrics --listen` takes it (an IPv6 address in brackets). */
export const listenArg = (address: string, port: number) =>
  `${address.includes(":") ? `[${address}]` : address}:${port}`;

/**
 * The exporter runs as root (qemu:///system), so systemd fences it in: it reads libvirt's socket,
 * sysfs and kvmstrap's state dir and writes nothing but virsh's cache (an empty history file).
 */
export function renderMetricsService(listen: string, o: { vcpuStats?: boolean } = {}): string {
  return `# Written by kvmstrap from the answer's metrics: section.
[Unit]
Description=kvmstrap metrics: Prometheus exporter of this host's VMs on ${listen}
Wants=libvirtd.service network-online.target
After=libvirtd.service network-online.target

[Service]
Type=simple
ExecStart=/usr/bin/env kvmstrap metrics --listen ${listen}${o.vcpuStats ? " --vcpu-stats" : ""}
Restart=on-failure
RestartSec=5
CacheDirectory=kvmstrap-metrics
Environment=XDG_CACHE_HOME=/var/cache/kvmstrap-metrics
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
LockPersonality=yes

[Install]
WantedBy=multi-user.target
`;
}

/**
 * The answer's address, else the management address: the answer's static one on the interface with
 * the default route, else a global one the report reads there (IPv4 first; never link-local).
 */
export function metricsListenAddress(ctx: PlanContext, m: Metrics): string | null {
  if (m.listen) return m.listen;
  const fromAnswer = managementAddressesOf(ctx.answer)[0];
  if (fromAnswer) return fromAnswer;
  const read = ctx.report.nics.flatMap((n) =>
    n.management && Array.isArray(n.addresses) ? n.addresses.filter((a) => a.scope === "global") : [],
  );
  return (read.find((a) => a.family === "inet") ?? read[0])?.address ?? null;
}

export function planMetrics(ctx: PlanContext): void {
  const m = ctx.answer.metrics;
  if (!m) {
    planRemovedMetrics(ctx);
    return;
  }
  if (isRefused(ctx, "metrics")) return;
  const address = metricsListenAddress(ctx, m);
  if (!address) {
    refuse(
      ctx,
      "metrics.listen",
      "no management address to listen on: the answer gives the interface with the default route no static address and the host report reads none; give metrics.listen",
    );
    return;
  }
  const listen = listenArg(address, m.port);
  const content = renderMetricsService(listen, { vcpuStats: m.vcpuStats });
  const previous = currentOf(ctx, METRICS_UNIT_PATH);
  const changed = previous !== null && previous !== content;
  if (changed) {
    planCommand(ctx, {
      id: "metrics.restart-on-undo",
      argv: ["true"],
      undo: ["systemctl", "try-restart", METRICS_UNIT],
      effect: "none",
      summary: `on undo: restart ${METRICS_UNIT} once its unit is restored`,
    });
    planCommand(ctx, {
      id: "metrics.reload-on-undo",
      argv: ["true"],
      undo: ["systemctl", "daemon-reload"],
      effect: "none",
      summary: `on undo: systemd reads the restored ${METRICS_UNIT}`,
    });
  }
  planFile(ctx, {
    id: "metrics.unit",
    path: METRICS_UNIT_PATH,
    content,
    effect: "none",
    summary: `${METRICS_UNIT}: kvmstrap metrics listening on ${listen}${m.listen ? "" : " (the management address)"}${m.vcpuStats ? ", per-vCPU figures" : ""}`,
  });
  if (changed)
    planCommand(ctx, {
      id: "metrics.daemon-reload",
      argv: ["systemctl", "daemon-reload"],
      effect: "none",
      summary: `systemd reads the changed ${METRICS_UNIT}`,
    });
  planCommand(ctx, {
    id: "metrics.enable",
    argv: ["systemctl", "enable", "--now", METRICS_UNIT],
    undo: ["systemctl", "disable", "--now", METRICS_UNIT],
    check: ["systemctl", "is-enabled", "--quiet", METRICS_UNIT],
    effect: "none",
    summary: `enable and start ${METRICS_UNIT}`,
  });
  if (changed)
    planCommand(ctx, {
      id: "metrics.restart",
      argv: ["systemctl", "try-restart", METRICS_UNIT],
      effect: "none",
      summary: `restart ${METRICS_UNIT} so it listens on ${listen}`,
    });
}

/**
 * The unit an earlier apply wrote, with no metrics: section now: stopped, disabled, removed. On undo
 * (in reverse) the file is back before `enable --now`, which reloads systemd itself.
 */
function planRemovedMetrics(ctx: PlanContext): void {
  const previous = currentOf(ctx, METRICS_UNIT_PATH);
  if (previous === null) return;
  planCommand(ctx, {
    id: "metrics.removed.disable",
    argv: ["systemctl", "disable", "--now", METRICS_UNIT],
    undo: ["systemctl", "enable", "--now", METRICS_UNIT],
    effect: "none",
    summary: `stop and disable ${METRICS_UNIT}: the answer has no metrics: section`,
  });
  ctx.actions.push({
    kind: "remove-file",
    id: "metrics.removed.unit",
    path: METRICS_UNIT_PATH,
    previous,
    effect: "none",
    summary: `remove ${METRICS_UNIT} (the metrics: section left the answer)`,
  });
  planCommand(ctx, {
    id: "metrics.removed.daemon-reload",
    argv: ["systemctl", "daemon-reload"],
    effect: "none",
    summary: `systemd forgets ${METRICS_UNIT}`,
  });
}
