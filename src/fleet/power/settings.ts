// The one schema of a node's power settings (what `PUT /v1/fleet/nodes/NODE/power` takes and
// `kvmstrap fleet power` sends): strict objects, bounded strings, and names, hosts and URLs a driver
// can use safely. The TS types the drivers take (PowerSettings) are checked against it at compile
// time below, so the two cannot drift. Secrets leave the server only redacted ("(set)").
import { isIP } from "node:net";
import { z } from "zod";
import { HOSTNAME } from "../../core/grammar.js";
import type { PowerSettings } from "./index.js";

/** What a password or secret reads as in every view the server gives out. */
export const REDACTED = "(set)";

// No control characters in anything that reaches a command line, an environment or an HTTP header.
const PRINTABLE = /^[^\p{Cc}]*$/u;
const text = (max: number) =>
  z.string().min(1).max(max).regex(PRINTABLE, { message: "no control characters" });

/**
 * libvirt refuses "/" in a domain name; virsh looks a name up as a domain ID first, so an all-digit
 * name could reach another (running) domain, and a leading "-" would read as an option. Inside those
 * rules: letters, digits and . _ + : @ -, at most 128 (libvirt itself sets no length).
 */
const LIBVIRT_DOMAIN = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.+:@-]*$/, {
    message: "a libvirt domain name: letters, digits and . _ + : @ - (no '/', not starting with '-')",
  })
  .refine((s) => !/^\d+$/.test(s), { message: "all digits: virsh would take it for a domain ID" });

/**
 * driver[+transport]://[user@][host][:port]/[path][?params], as libvirt spells its URIs. Not the
 * ext transport nor a command= parameter: both name a program this server would run.
 */
const LIBVIRT_URI = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[a-z][a-z0-9]*(?:\+[a-z0-9]+)?:\/\/[!-~]*$/, {
    message: "a libvirt URI such as qemu:///system or qemu+ssh://root@host/system",
  })
  .refine((s) => !/^[a-z0-9]+\+ext:/.test(s) && !/[?&]command=/i.test(s), {
    message: "the ext transport and command= would run a program on this server: not accepted",
  });

/** A BMC's address as ipmitool -H takes it: a host name, or an IPv4 or IPv6 address. */
const BMC_HOST = z
  .string()
  .min(1)
  .max(253)
  .refine((s) => isIP(s) !== 0 || HOSTNAME.test(s), {
    message: "a host name or an IPv4/IPv6 address",
  });

/** http(s)://host[:port][/path], no credentials, query or fragment in it (those go in user/password). */
const REDFISH_URL = z
  .string()
  .min(1)
  .max(512)
  .refine(
    (s) => {
      if (!/^https?:\/\/[!-~]+$/i.test(s)) return false;
      try {
        const u = new URL(s);
        return u.hostname !== "" && !u.username && !u.password && !u.search && !u.hash;
      } catch {
        return false;
      }
    },
    { message: "an http(s)://HOST[:PORT] URL without user, password, query or fragment" },
  );

const REDFISH_SYSTEM = z
  .string()
  .max(256)
  .regex(/^\/redfish\/v1\/Systems\/[A-Za-z0-9._~%-]+\/?$/, {
    message: "a system's path such as /redfish/v1/Systems/1",
  });

export const libvirtSettings = z.strictObject({
  driver: z.literal("libvirt"),
  domain: LIBVIRT_DOMAIN,
  uri: LIBVIRT_URI.optional(),
});

/** IPMI 2.0 limits user names to 16 bytes and passwords to 20 (lanplus). */
export const ipmiSettings = z.strictObject({
  driver: z.literal("ipmi"),
  host: BMC_HOST,
  port: z.number().int().min(1).max(65535).optional(),
  user: text(16),
  password: text(20),
  interface: z.enum(["lanplus", "lan"]).optional(),
});

export const redfishSettings = z.strictObject({
  driver: z.literal("redfish"),
  url: REDFISH_URL,
  user: text(64),
  password: text(256),
  system: REDFISH_SYSTEM.optional(),
  insecure: z.boolean().optional(),
});

export const powerSettingsSchema = z.discriminatedUnion("driver", [
  libvirtSettings,
  ipmiSettings,
  redfishSettings,
]);

// The schema and the drivers' types are the same type, both ways (a compile error otherwise).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const sameType: Same<z.infer<typeof powerSettingsSchema>, PowerSettings> = true;
void sameType;

export type ParsedPower = { ok: true; settings: PowerSettings } | { ok: false; field: string; error: string };

/** Checks untrusted settings; a refusal names the field and the reason, never the value. */
export function parsePowerSettings(input: unknown): ParsedPower {
  const r = powerSettingsSchema.safeParse(input);
  if (r.success) return { ok: true, settings: r.data };
  const issue = r.error.issues[0];
  if (!issue) return { ok: false, field: "body", error: "not power settings" };
  const field = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys")
    return {
      ok: false,
      field: [field, issue.keys[0]].filter(Boolean).join("."),
      error: `unknown key (allowed for ${driverOf(input) ?? "this driver"}: ${allowedKeys(input)})`,
    };
  if (field === "driver" || (field === "" && issue.code === "invalid_union"))
    return { ok: false, field: "driver", error: "expected libvirt, ipmi or redfish" };
  if (field === "" && issue.code === "invalid_type")
    return { ok: false, field: "body", error: "expected a JSON object" };
  return { ok: false, field: field || "body", error: issue.message };
}

function driverOf(input: unknown): string | undefined {
  const d = (input as { driver?: unknown } | null)?.driver;
  return d === "libvirt" || d === "ipmi" || d === "redfish" ? d : undefined;
}

function allowedKeys(input: unknown): string {
  const d = driverOf(input);
  const shape =
    d === "libvirt" ? libvirtSettings.shape : d === "ipmi" ? ipmiSettings.shape : redfishSettings.shape;
  return Object.keys(shape).join(", ");
}

/** The settings as anyone but the power port sees them: every password "(set)". */
export function redactPower(s: PowerSettings): PowerSettings {
  return s.driver === "libvirt" ? { ...s } : { ...s, password: REDACTED };
}

/** One line for the CLI: driver, target, user; never the password. */
export function describePower(s: PowerSettings): string {
  if (s.driver === "libvirt") return `libvirt domain ${s.domain} at ${s.uri ?? "qemu:///system"}`;
  if (s.driver === "ipmi")
    return `ipmi ${s.host}${s.port ? `:${s.port}` : ""} (${s.interface ?? "lanplus"}) as ${s.user}, password ${REDACTED}`;
  return `redfish ${s.url}${s.system ? ` ${s.system}` : ""} as ${s.user}, password ${REDACTED}${s.insecure ? ", certificate not verified" : ""}`;
}
