// A VM's remote consoles in its domain XML: <graphics> for VNC and SPICE on the management address,
// ports chosen by libvirt (autoport). TLS is qemu.conf's (vnc_tls, spice_tls: src/plan/console-plan.ts),
// so no secret and no certificate path is in the domain: SPICE's defaultMode="secure" keeps every
// channel on its TLS port. A console password, if one is ever wanted, is libvirt's one-time ticket
// (virsh domdisplay / set-password at connection time), never a passwd= attribute here.
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
