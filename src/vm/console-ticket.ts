// One-time console tickets: a random password set on a running domain's VNC or SPICE console with
// libvirt's supported call for it, update-device --live of the <graphics> element with passwd and
// passwdValidTo (libvirt then runs qemu's set_password and expire_password). --live only: the
// persistent definition is not touched, so the ticket is never in `dumpxml --inactive`, and it is
// gone when the VM restarts. The live XML shows it only with --security-info. The console must be
// locked (consoles.tickets: password auth on from the start, src/vm/console-xml.ts): on an
// unlocked VNC console qemu would accept the password and never ask for it.
import { randomInt } from "node:crypto";
import { InputError } from "../core/errors.js";
import type { Libvirt } from "./libvirt.js";

/** No look-alike characters: a ticket may be typed from a screen. */
const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
/** VNC's password auth (DES) reads 8 characters; SPICE takes up to 60. */
export const TICKET_LENGTH = { vnc: 8, spice: 24 } as const;
export const MAX_TTL_SECONDS = 86_400;

export function newTicket(kind: "vnc" | "spice"): string {
  let s = "";
  for (let i = 0; i < TICKET_LENGTH[kind]; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return s;
}

/** libvirt's passwdValidTo: a UTC time to the second. */
export const validToOf = (d: Date): string => d.toISOString().slice(0, 19);

/** The running domain's <graphics type=KIND> element, as dumpxml printed it, or null. */
export function graphicsElement(liveXml: string, kind: "vnc" | "spice"): string | null {
  for (const m of liveXml.matchAll(/<graphics\s[^>]*?(\/>|>[\s\S]*?<\/graphics>)/g))
    if (new RegExp(`^<graphics\\s[^>]*type=(['"])${kind}\\1`).test(m[0])) return m[0];
  return null;
}

/** Whether the element carries the lock or an earlier ticket (password auth on at start). */
export const isLocked = (element: string): boolean => /\spasswdValidTo=/.test(element);

/** The element with the ticket: earlier passwd/passwdValidTo replaced, all else as libvirt has it. */
export function ticketGraphicsXml(element: string, password: string, validTo: Date): string {
  if (!/^[A-Za-z0-9]+$/.test(password)) throw new Error("a ticket is letters and digits");
  return element.replace(/^<graphics\s[^>]*?(?=\/?>)/, (open) => {
    const kept = open.replace(/\s(passwd|passwdValidTo)=(['"])[^'"]*\2/g, "");
    return `${kept} passwd='${password}' passwdValidTo='${validToOf(validTo)}'`;
  });
}

export type Ticket = { password: string; expiresAt: string };

export async function setConsoleTicket(
  lv: Libvirt,
  name: string,
  kind: "vnc" | "spice",
  ttlSeconds: number,
  now: Date = new Date(),
): Promise<Ticket> {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_TTL_SECONDS)
    throw new InputError(`a ticket lives 1 to ${MAX_TTL_SECONDS} seconds (got ${ttlSeconds})`);
  // With --security-info: the lock's passwd="" is what tells a locked console from an open one.
  const element = graphicsElement(await lv.domainXml(name, { securityInfo: true }), kind);
  if (!element) throw new InputError(`${name} has no ${kind.toUpperCase()} console`);
  if (!isLocked(element))
    throw new InputError(
      `${name}'s ${kind.toUpperCase()} console was not started locked for tickets: deploy it with consoles.tickets: true (or vm deploy --console-tickets) and restart it`,
    );
  const password = newTicket(kind);
  const validTo = new Date(Math.ceil(now.getTime() / 1000) * 1000 + ttlSeconds * 1000);
  await lv.updateDeviceLive(name, ticketGraphicsXml(element, password, validTo));
  return { password, expiresAt: validTo.toISOString() };
}
