// A VM's remote consoles in its domain XML: <graphics> for VNC and SPICE on the management address,
// ports chosen by libvirt (autoport). TLS is qemu.conf's (vnc_tls, spice_tls: src/plan/console-plan.ts),
// so no secret and no certificate path is in the domain: SPICE's defaultMode="secure" keeps every
// channel on its TLS port. A console password, if one is ever wanted, is libvirt's one-time ticket
// (virsh domdisplay / set-password at connection time), never a passwd= attribute here.
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
}

export function graphicsXml(g: ConsoleGraphics | undefined): string[] {
  if (!g) return [];
  const a = xmlEscape(g.listen);
  const L: string[] = [];
  if (g.vnc)
    L.push(
      `    <graphics type="vnc" port="-1" autoport="yes" listen="${a}">`,
      `      <listen type="address" address="${a}"/>`,
      "    </graphics>",
    );
  if (g.spice)
    L.push(
      `    <graphics type="spice" autoport="yes" listen="${a}"${g.tls ? ' defaultMode="secure"' : ""}>`,
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
  return { vnc: c.vnc, spice: c.spice, listen: c.listen, tls: c.tls };
}
