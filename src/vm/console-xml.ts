// A VM's remote consoles in its domain XML: <graphics> for VNC and SPICE on the management address,
// ports chosen by libvirt (autoport). TLS is qemu.conf's (vnc_tls, spice_tls: src/plan/console-plan.ts),
// so no secret and no certificate path is in the domain: SPICE's defaultMode="secure" keeps every
// channel on its TLS port. With tickets, the console is locked: qemu starts with password auth on
// (libvirt turns it on for a passwd attribute) and an empty password expired at the epoch, so no
// one connects until `vm console --ticket` sets a one-time password on the running domain only
// (src/vm/console-ticket.ts). The empty, expired passwd="" is no secret.
import { consoleRules } from "../answer/rules/consoles.js";
import { gatherFacts } from "../answer/rules/facts.js";
import type { Answer } from "../answer/schema.js";
import type { HostReport } from "../detect/types.js";
import { xmlEscape } from "../plan/render/libvirt-xml.js";

export interface ConsoleGraphics {
  vnc: boolean;
  spice: boolean;
  listen: string;
  /** SPICE channels only over TLS (spice_tls = 1 in qemu.conf). */
  tls: boolean;
  /** Locked until a one-time ticket is set (consoles.tickets). */
  tickets?: boolean;
}

/** The lock: password auth on, with an empty password that expired at the epoch. */
export const TICKET_LOCK = 'passwd="" passwdValidTo="1970-01-01T00:00:00"';

export function graphicsXml(g: ConsoleGraphics | undefined): string[] {
  if (!g) return [];
  const a = xmlEscape(g.listen);
  const L: string[] = [];
  const lock = g.tickets ? ` ${TICKET_LOCK}` : "";
  if (g.vnc)
    L.push(
      `    <graphics type="vnc" port="-1" autoport="yes" listen="${a}"${lock}>`,
      `      <listen type="address" address="${a}"/>`,
      "    </graphics>",
    );
  if (g.spice)
    L.push(
      `    <graphics type="spice" autoport="yes" listen="${a}"${g.tls ? ' defaultMode="secure"' : ""}${lock}>`,
      `      <listen type="address" address="${a}"/>`,
      "    </graphics>",
    );
  if (L.length) L.push("    <video>", '      <model type="vga"/>', "    </video>");
  return L;
}

/**
 * The <graphics> every VM of this answer gets: its consoles: section, unless the rule set's console
 * rules (src/answer/rules/consoles.ts) refuse it; then none, as the plan adds no console settings.
 */
export function consoleGraphicsFor(answer: Answer, report: HostReport): ConsoleGraphics | undefined {
  const c = answer.consoles;
  if (!c || (!c.vnc && !c.spice)) return undefined;
  const input = { answer, report, facts: gatherFacts(answer, report) };
  if (consoleRules.some((r) => r.check(input).some((f) => f.level === "error"))) return undefined;
  return {
    vnc: c.vnc,
    spice: c.spice,
    listen: c.listen,
    tls: c.tls,
    ...(c.tickets ? { tickets: true } : {}),
  };
}
