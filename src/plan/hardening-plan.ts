// libvirt hardening (hardening: in the answer): qemu's seccomp sandbox pinned on in qemu.conf, and
// remote libvirt either off or TLS only (libvirtd.conf, Debian 12's socket units), with libvirtd's
// certificates from the host's PKI (kvmstrap pki, which writes them where libvirtd looks by
// default). Every step has its inverse: the files' previous content, the socket units put back as
// they were (a step whose check finds it in place is skipped, and a skipped step is never undone).
// `kvmstrap verify`'s hardening.* checks are what proves it on the host.
import type { Hardening } from "../answer/schema-hardening.js";
import { currentOf, type PlanContext, planCommand, planFile } from "./context.js";
import { LIBVIRTD_SOCKETS_RESTART, TLS_SOCKET_LISTENS } from "./libvirtd-sockets.js";
import { type ConfSetting, managedBlock, withManagedBlock } from "./managed-conf-block.js";

export const HARDENING_PATHS = {
  qemuConf: "/etc/libvirt/qemu.conf",
  libvirtdConf: "/etc/libvirt/libvirtd.conf",
} as const;

/** Distinct from the consoles block's prefix: each block restores only what it commented out. */
const BLOCK = managedBlock("hardening", "#kvmstrap-hardening# ");

/** qemu.conf or libvirtd.conf with the hardening block holding these settings (managed-conf-block.ts). */
export function withHardeningBlock(current: string, settings: readonly ConfSetting[]): string {
  return withManagedBlock(BLOCK, current, settings);
}

/** The content a file has once the actions planned before this one ran (consoles write qemu.conf too). */
function plannedContent(ctx: PlanContext, path: string): string {
  for (let i = ctx.actions.length - 1; i >= 0; i--) {
    const a = ctx.actions[i];
    if (a?.kind === "write-file" && a.path === path) return a.content;
  }
  return currentOf(ctx, path) ?? "";
}

export function libvirtdSettings(h: Hardening): ConfSetting[] {
  if (!h.remoteLibvirt) return [];
  // listen_tcp/listen_tls act under `libvirtd --listen`; the socket units below are Debian 12's way.
  const s: ConfSetting[] = [
    ["listen_tcp", 0],
    ["listen_tls", h.remoteLibvirt === "tls" ? 1 : 0],
    ["tls_no_verify_certificate", 0],
  ];
  // The client certificate, verified against the host's CA, is the credential.
  if (h.remoteLibvirt === "tls") s.push(["auth_tls", "none"]);
  return s;
}

const isEnabled = (unit: string) => ["systemctl", "is-enabled", "--quiet", unit];

function planSockets(ctx: PlanContext, mode: "off" | "tls"): void {
  planCommand(ctx, {
    id: "hardening.tcp-socket",
    argv: ["systemctl", "disable", "--now", "libvirtd-tcp.socket"],
    // Enabling only, here and below: the restart (on undo: the restart on undo) starts the enabled
    // sockets, as systemd starts no socket of a running libvirtd (libvirtd-sockets.ts).
    undo: ["systemctl", "enable", "libvirtd-tcp.socket"],
    check: ["sh", "-c", "! systemctl is-enabled --quiet libvirtd-tcp.socket"],
    effect: "none",
    summary: "libvirtd-tcp.socket disabled: never plain TCP",
  });
  if (mode === "tls") {
    planCommand(ctx, {
      id: "hardening.tls-socket",
      argv: ["systemctl", "enable", "libvirtd-tls.socket"],
      undo: ["systemctl", "disable", "--now", "libvirtd-tls.socket"],
      check: isEnabled("libvirtd-tls.socket"),
      effect: "none",
      summary: "libvirtd-tls.socket enabled: remote libvirt over TLS (port 16514)",
    });
  } else {
    planCommand(ctx, {
      id: "hardening.tls-socket",
      argv: ["systemctl", "disable", "--now", "libvirtd-tls.socket"],
      undo: ["systemctl", "enable", "libvirtd-tls.socket"],
      check: ["sh", "-c", "! systemctl is-enabled --quiet libvirtd-tls.socket"],
      effect: "none",
      summary: "libvirtd-tls.socket disabled: no remote libvirt",
    });
  }
}

export function planHardening(ctx: PlanContext): void {
  const h = ctx.answer.hardening;
  if (!h) return;
  if (h.remoteLibvirt === "tls") {
    // Keys are made on the host, never carried in a plan or its journal; the CA is kept on undo.
    planCommand(ctx, {
      id: "hardening.pki",
      argv: ["kvmstrap", "pki", "init"],
      check: ["kvmstrap", "pki", "status"],
      effect: "none",
      summary: "the host's CA and libvirtd's server certificate (kvmstrap pki)",
    });
  }
  const qemu = HARDENING_PATHS.qemuConf;
  const libvirtd = HARDENING_PATHS.libvirtdConf;
  const qemuBase = plannedContent(ctx, qemu);
  const libvirtdBase = plannedContent(ctx, libvirtd);
  const qemuContent = withHardeningBlock(qemuBase, h.seccompSandbox ? [["seccomp_sandbox", 1]] : []);
  const libvirtdContent = withHardeningBlock(libvirtdBase, libvirtdSettings(h));
  const changes = qemuContent !== qemuBase || libvirtdContent !== libvirtdBase;
  if (changes) {
    // libvirtd reads both files when it starts; on undo (in reverse) this restarts it last.
    planCommand(ctx, {
      id: "hardening.libvirtd-restart-on-undo",
      argv: ["true"],
      undo: [...LIBVIRTD_SOCKETS_RESTART],
      effect: "none",
      summary: "on undo: restart libvirtd once qemu.conf and libvirtd.conf are restored",
    });
  }
  if (qemuContent !== qemuBase)
    planFile(ctx, {
      id: "hardening.qemu-conf",
      path: qemu,
      content: qemuContent,
      mode: 0o600,
      effect: "none",
      summary: "qemu.conf: seccomp_sandbox = 1 (every guest's qemu under its seccomp filter)",
    });
  if (libvirtdContent !== libvirtdBase)
    planFile(ctx, {
      id: "hardening.libvirtd-conf",
      path: libvirtd,
      content: libvirtdContent,
      mode: 0o644,
      effect: "none",
      summary:
        h.remoteLibvirt === "tls"
          ? "libvirtd.conf: TLS only, client certificates verified, no plain TCP"
          : "libvirtd.conf: no network listener",
    });
  if (h.remoteLibvirt) planSockets(ctx, h.remoteLibvirt);
  // With a file changed; else only where the TLS socket asked for does not listen yet: an apply
  // that changes nothing must not restart libvirtd.
  const tlsCheck = h.remoteLibvirt === "tls" ? [...TLS_SOCKET_LISTENS] : null;
  if (changes || tlsCheck)
    planCommand(ctx, {
      id: "hardening.libvirtd-restart",
      argv: [...LIBVIRTD_SOCKETS_RESTART],
      check: changes ? null : tlsCheck,
      effect: "none",
      summary:
        "restart libvirtd so it reads the hardening (running guests keep their sandbox state until restarted)",
    });
}
