// Remote consoles (consoles: in the answer): the host's PKI made where it is missing, qemu.conf's
// VNC/SPICE settings (TLS with the PKI's credentials directories, client certificates verified, the
// management address as the default listen address), and libvirtd restarted to read them. Each VM's
// <graphics> element (src/vm/console-xml.ts) names the same address. What is unsafe (a wildcard, no
// TLS on a network) the rule set refused before this runs.
import type { Consoles } from "../answer/schema-consoles.js";
import { consoleCertDir } from "../host/pki/layout.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";
import { type ConfSetting, managedBlock, withManagedBlock } from "./managed-conf-block.js";

export const QEMU_CONF = "/etc/libvirt/qemu.conf";
/** Distinct from the hardening block's prefix: each block restores only what it commented out. */
const BLOCK = managedBlock("consoles", "#kvmstrap-replaced# ");

export type QemuSetting = ConfSetting;

/** qemu.conf's console settings for this answer; `certDir` moves the credentials (tests, roots). */
export function consoleQemuSettings(
  c: Consoles,
  certDir: (kind: "vnc" | "spice") => string = consoleCertDir,
): QemuSetting[] {
  const s: QemuSetting[] = [];
  if (c.vnc) {
    s.push(["vnc_listen", c.listen], ["vnc_auto_unix_socket", 0], ["vnc_tls", c.tls ? 1 : 0]);
    if (c.tls)
      s.push(["vnc_tls_x509_cert_dir", certDir("vnc")], ["vnc_tls_x509_verify", c.verifyClients ? 1 : 0]);
  }
  if (c.spice) {
    s.push(["spice_listen", c.listen], ["spice_tls", c.tls ? 1 : 0]);
    if (c.tls) s.push(["spice_tls_x509_cert_dir", certDir("spice")]);
  }
  return s;
}

/** qemu.conf with the consoles block holding these settings (managed-conf-block.ts). */
export function withQemuSettings(current: string, settings: readonly QemuSetting[]): string {
  return withManagedBlock(BLOCK, current, settings);
}

export function planConsoles(ctx: PlanContext): void {
  const c = ctx.answer.consoles;
  if (!c || (!c.vnc && !c.spice) || isRefused(ctx, "consoles", "consoles.listen", "consoles.tls")) return;
  if (c.tls) {
    // Keys are made on the host, never carried in a plan or its journal; the CA is kept on undo
    // (clients hold certificates from it: `kvmstrap pki rotate --ca` retires it).
    planCommand(ctx, {
      id: "consoles.pki",
      argv: ["kvmstrap", "pki", "init", "--address", c.listen],
      check: ["kvmstrap", "pki", "status"],
      effect: "none",
      summary: `the host's CA and certificates for ${[c.vnc && "VNC", c.spice && "SPICE"].filter(Boolean).join(" and ")} (kvmstrap pki)`,
    });
  }
  const current = currentOf(ctx, QEMU_CONF) ?? "";
  const content = withQemuSettings(current, consoleQemuSettings(c));
  if (content === current) return;
  // libvirtd reads qemu.conf when it starts: restarted after the file is written and, on undo, after
  // the file is restored (undo runs in reverse, so that restart is the undo of a step before it).
  // Running guests keep their consoles until they are restarted.
  planCommand(ctx, {
    id: "consoles.libvirtd-restart-on-undo",
    argv: ["true"],
    undo: ["systemctl", "try-restart", "libvirtd.service"],
    effect: "none",
    summary: "on undo: restart libvirtd once qemu.conf is restored",
  });
  planFile(ctx, {
    id: "consoles.qemu-conf",
    path: QEMU_CONF,
    content,
    mode: 0o600,
    effect: "none",
    summary: `qemu.conf: ${[c.vnc && "VNC", c.spice && "SPICE"].filter(Boolean).join(" and ")} on ${c.listen}${c.tls ? " with TLS" : ""}`,
  });
  planCommand(ctx, {
    id: "consoles.libvirtd-restart",
    argv: ["systemctl", "try-restart", "libvirtd.service"],
    effect: "none",
    summary: "restart libvirtd so it reads the console settings",
  });
}
