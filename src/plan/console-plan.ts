// Remote consoles (consoles: in the answer): the host's PKI made where it is missing, qemu.conf's
// VNC/SPICE settings (TLS with the PKI's credentials directories, client certificates verified, the
// management address as the default listen address), and libvirtd restarted to read them. Each VM's
// <graphics> element (src/vm/console-xml.ts) names the same address. What is unsafe (a wildcard, no
// TLS on a network) the rule set refused before this runs.
import type { Consoles } from "../answer/schema-consoles.js";
import { consoleCertDir } from "../host/pki/layout.js";
import { currentOf, isRefused, type PlanContext, planCommand, planFile } from "./context.js";

export const QEMU_CONF = "/etc/libvirt/qemu.conf";
const BEGIN = "# BEGIN kvmstrap consoles (managed: kvmstrap plan/apply rewrites this block)";
const END = "# END kvmstrap consoles";
const DISABLED = "#kvmstrap-replaced# ";

export type QemuSetting = [key: string, value: string | number];

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

const render = ([k, v]: QemuSetting) => `${k} = ${typeof v === "number" ? v : JSON.stringify(v)}`;

/**
 * qemu.conf with these settings: an earlier assignment of each key is commented out (libvirt reads
 * qemu.conf as one config; a key given twice is an error in some versions) and the settings go in
 * one managed block at the end, replacing the block an earlier apply wrote. No settings: the block
 * and the markers are removed and the assignments it replaced restored.
 */
export function withQemuSettings(current: string, settings: readonly QemuSetting[]): string {
  const keys = new Set(settings.map(([k]) => k));
  const lines: string[] = [];
  let inBlock = false;
  for (const line of current.split("\n")) {
    if (line === BEGIN) inBlock = true;
    else if (line === END) inBlock = false;
    else if (!inBlock) {
      const restored = line.startsWith(DISABLED) ? line.slice(DISABLED.length) : line;
      const key = /^\s*([a-z0-9_]+)\s*=/.exec(restored)?.[1];
      lines.push(key && keys.has(key) ? `${DISABLED}${restored}` : restored);
    }
  }
  while (lines.length && lines[lines.length - 1] === "") lines.pop();
  if (!settings.length) return `${lines.join("\n")}\n`;
  return `${[...lines, "", BEGIN, ...settings.map(render), END].join("\n")}\n`;
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
