// One-time console tickets, the pure parts: the <graphics> element update-device --live is given
// (libvirt's live XML as dumpxml prints it, the ticket and its UTC expiry added, an earlier ticket
// replaced), the lock a tickets console starts with, the ticket's alphabet and length per protocol,
// and the .vv and URI that carry it. The real path (libvirtd, qemu, gtk-vnc) is in
// test/e2e/console-tls.e2e.test.ts.
import { describe, expect, it } from "vitest";
import { consoleUri, renderVv } from "../../src/vm/console-file.js";
import {
  graphicsElement,
  isLocked,
  newTicket,
  setConsoleTicket,
  ticketGraphicsXml,
  validToOf,
} from "../../src/vm/console-ticket.js";
import { graphicsXml, TICKET_LOCK } from "../../src/vm/console-xml.js";
import { FakeLibvirt } from "./fake-libvirt.js";

const LIVE = `<domain type='qemu' id='1'>
  <devices>
    <graphics type='vnc' port='5900' autoport='yes' listen='192.0.2.10' passwd='' passwdValidTo='1970-01-01T00:00:00'>
      <listen type='address' address='192.0.2.10'/>
    </graphics>
    <graphics type='spice' tlsPort='5901' autoport='yes' listen='192.0.2.10' defaultMode='secure'>
      <listen type='address' address='192.0.2.10'/>
    </graphics>
  </devices>
</domain>`;

describe("console tickets", () => {
  it("the element update-device gets: libvirt's own with passwd and a UTC passwdValidTo, an earlier one replaced", () => {
    const vnc = graphicsElement(LIVE, "vnc") ?? "";
    expect(isLocked(vnc)).toBe(true);
    expect(isLocked(graphicsElement(LIVE, "spice") ?? "")).toBe(false);
    const at = new Date("2026-12-06T12:00:30.400Z");
    const once = ticketGraphicsXml(vnc, "Ab3dEf7h", at);
    expect(
      once,
    ).toBe(`<graphics type='vnc' port='5900' autoport='yes' listen='192.0.2.10' passwd='Ab3dEf7h' passwdValidTo='2026-12-06T12:00:30'>
      <listen type='address' address='192.0.2.10'/>
    </graphics>`);
    const twice = ticketGraphicsXml(once, "Zz9yYx8w", at);
    expect(twice.match(/passwd=/g)).toHaveLength(1);
    expect(twice).toContain("passwd='Zz9yYx8w'");
    expect(() => ticketGraphicsXml(vnc, "a'b", at)).toThrow(/letters and digits/);
    expect(validToOf(new Date("2026-01-02T03:04:05.999Z"))).toBe("2026-01-02T03:04:05");
  });

  it("tickets: 8 characters for VNC (its DES auth reads 8), 24 for SPICE, no look-alikes, never the same", () => {
    const v = newTicket("vnc");
    const s = newTicket("spice");
    expect(v).toMatch(/^[A-HJ-NP-Za-km-z2-9]{8}$/);
    expect(s).toMatch(/^[A-HJ-NP-Za-km-z2-9]{24}$/);
    expect(new Set(Array.from({ length: 50 }, () => newTicket("vnc"))).size).toBe(50);
  });

  it("a tickets console starts locked (an empty password expired at the epoch); without tickets no passwd at all", () => {
    const g = { vnc: true, spice: true, listen: "192.0.2.10", tls: true };
    expect(graphicsXml(g).join("\n")).not.toContain("passwd");
    const locked = graphicsXml({ ...g, tickets: true }).filter((l) => l.includes("<graphics"));
    expect(locked).toHaveLength(2);
    for (const l of locked) expect(l).toContain(TICKET_LOCK);
  });

  it("the .vv and the URI carry the ticket; without one, no password line", () => {
    const f = {
      type: "spice" as const,
      title: "web",
      host: "192.0.2.10",
      port: null,
      tlsPort: 5901,
      ca: null,
      hostSubject: null,
    };
    expect(renderVv(f)).not.toContain("password");
    expect(renderVv({ ...f, password: "Ab3dEf7hAb3dEf7hAb3dEf7h" })).toContain(
      "\npassword=Ab3dEf7hAb3dEf7hAb3dEf7h\n",
    );
    expect(consoleUri({ ...f, password: "Ab3d" })).toBe("spice://192.0.2.10?tls-port=5901&password=Ab3d");
    expect(consoleUri({ ...f, type: "vnc", port: 5900, password: "Ab3d" })).toBe(
      "vnc://192.0.2.10:5900?VncPassword=Ab3d",
    );
  });

  it("an unlocked console, or a TTL out of range, is refused before libvirt is asked", async () => {
    const lv = new FakeLibvirt();
    lv.domains.set("web", { xml: LIVE, state: "running" });
    await expect(setConsoleTicket(lv, "web", "spice", 60)).rejects.toThrow(/not started locked for tickets/);
    await expect(setConsoleTicket(lv, "web", "vnc", 0)).rejects.toThrow(/1 to 86400 seconds/);
    expect(lv.calls).not.toContain("updateDeviceLive");
    const t = await setConsoleTicket(lv, "web", "vnc", 30, new Date("2026-12-06T12:00:00Z"));
    expect(t.expiresAt).toBe("2026-12-06T12:00:30.000Z");
    expect(lv.calls).toContain("updateDeviceLive");
  });
});
