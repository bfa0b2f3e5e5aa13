// The power settings' one schema: what it accepts for each driver, and each refusal naming the
// field (never echoing a password); the redaction every view uses.
import { describe, expect, it } from "vitest";
import {
  describePower,
  parsePowerSettings,
  REDACTED,
  redactPower,
} from "../../../src/fleet/power/settings.js";

const ok = (x: unknown) => {
  const r = parsePowerSettings(x);
  expect(r, JSON.stringify(r)).toMatchObject({ ok: true });
  return r.ok ? r.settings : undefined;
};
const refused = (x: unknown) => {
  const r = parsePowerSettings(x);
  if (r.ok) throw new Error(`accepted ${JSON.stringify(x)}`);
  return r;
};

describe("power settings schema", () => {
  it("accepts each driver's settings as the drivers take them", () => {
    expect(ok({ driver: "libvirt", domain: "kvmstrap-node-1" })).toEqual({
      driver: "libvirt",
      domain: "kvmstrap-node-1",
    });
    ok({ driver: "libvirt", domain: "vm_2.test", uri: "qemu+ssh://root@hv1.example/system" });
    ok({ driver: "libvirt", domain: "test", uri: "test:///default" });
    ok({ driver: "ipmi", host: "10.0.0.21", user: "ADMIN", password: "p@ss word!" });
    ok({
      driver: "ipmi",
      host: "fe80::1",
      port: 623,
      user: "root",
      password: "x".repeat(20),
      interface: "lan",
    });
    ok({ driver: "ipmi", host: "bmc-r1-07.example.net", user: "admin", password: "pw" });
    ok({
      driver: "redfish",
      url: "https://bmc.example:8443",
      user: "root",
      password: "calvin",
      insecure: true,
    });
    ok({
      driver: "redfish",
      url: "http://10.0.0.5/",
      user: "a",
      password: "b",
      system: "/redfish/v1/Systems/System.Embedded.1",
    });
  });

  it("refuses bad values, naming the field", () => {
    const cases: [unknown, string, RegExp][] = [
      [{ driver: "libvirt", domain: "a/b" }, "domain", /libvirt domain name/],
      [{ driver: "libvirt", domain: "-c" }, "domain", /not starting with '-'/],
      [{ driver: "libvirt", domain: "42" }, "domain", /domain ID/],
      [{ driver: "libvirt", domain: "x".repeat(129) }, "domain", /128/],
      [
        { driver: "libvirt", domain: "vm", uri: "qemu+ext:///system?command=/bin/sh" },
        "uri",
        /run a program/,
      ],
      [
        { driver: "libvirt", domain: "vm", uri: "qemu:///system?x=1&command=/bin/sh" },
        "uri",
        /run a program/,
      ],
      [{ driver: "libvirt", domain: "vm", uri: "qemu system" }, "uri", /libvirt URI/],
      [{ driver: "ipmi", host: "bad host", user: "admin", password: "pw" }, "host", /host name or an IPv4/],
      [{ driver: "ipmi", host: "10.0.0.1", user: "admin", password: "x".repeat(21) }, "password", /20/],
      [{ driver: "ipmi", host: "10.0.0.1", user: "admin", password: "a\nb" }, "password", /control/],
      [{ driver: "ipmi", host: "10.0.0.1", user: "x".repeat(17), password: "pw" }, "user", /16/],
      [{ driver: "ipmi", host: "10.0.0.1", user: "admin", password: "pw", port: 70000 }, "port", /65535/],
      [{ driver: "ipmi", host: "10.0.0.1", user: "admin" }, "password", /./],
      [{ driver: "redfish", url: "https://u:p@bmc", user: "a", password: "b" }, "url", /without user/],
      [{ driver: "redfish", url: "ftp://bmc", user: "a", password: "b" }, "url", /http/],
      [
        { driver: "redfish", url: "https://bmc", user: "a", password: "b", system: "/etc/passwd" },
        "system",
        /Systems/,
      ],
      [{ driver: "nope" }, "driver", /libvirt, ipmi or redfish/],
      [{}, "driver", /libvirt, ipmi or redfish/],
      [[], "body", /object/],
      ["x", "body", /object/],
      [null, "body", /object/],
    ];
    for (const [input, field, why] of cases) {
      const r = refused(input);
      expect(r.field, JSON.stringify(input)).toBe(field);
      expect(r.error, JSON.stringify(input)).toMatch(why);
    }
  });

  it("refuses unknown keys, naming the key and what is allowed", () => {
    const r = refused({ driver: "libvirt", domain: "vm", password: "hunter2" });
    expect(r.field).toBe("password");
    expect(r.error).toMatch(/unknown key .*libvirt: driver, domain, uri/);
  });

  it("never echoes a refused password", () => {
    const secret = "s3cret-\u0001-Zq9";
    const r = refused({ driver: "redfish", url: "https://bmc", user: "a", password: secret });
    expect(JSON.stringify(r)).not.toContain("Zq9");
  });

  it("redacts every password and describes without it", () => {
    const s = ok({ driver: "ipmi", host: "10.0.0.1", user: "admin", password: "hunter2" });
    if (!s) return;
    expect(redactPower(s)).toEqual({ driver: "ipmi", host: "10.0.0.1", user: "admin", password: REDACTED });
    expect(s).toMatchObject({ password: "hunter2" }); // the stored copy is untouched
    expect(describePower(s)).not.toContain("hunter2");
    const l = ok({ driver: "libvirt", domain: "vm" });
    if (l) expect(redactPower(l)).toEqual(l);
  });
});
