// verify's secrets check and console tickets: the lock a tickets console starts with (an empty,
// expired passwd) and a one-time ticket on the running domain (passwd with a passwdValidTo at most a
// day ahead) are not passwords kept in the domain; a passwd without an expiry, or valid for longer
// than a ticket can be, still is.
import { describe, expect, it } from "vitest";
import { domainFactsOf } from "../../src/app/verify-hardening-xml.js";

const NOW = Date.parse("2026-12-06T12:00:00Z");
const dom = (graphics: string) =>
  `<domain type='kvm'><name>web</name><devices>${graphics}</devices></domain>`;
const vnc = (attrs: string) =>
  dom(`<graphics type='vnc' port='5900' autoport='yes' listen='192.0.2.10' ${attrs}>
  <listen type='address' address='192.0.2.10'/></graphics>`);

describe("verify's inline secrets and console tickets", () => {
  it("the lock and a ticket are not reported", () => {
    expect(domainFactsOf(vnc("passwd='' passwdValidTo='1970-01-01T00:00:00'"), NOW).inlineSecrets).toEqual(
      [],
    );
    expect(
      domainFactsOf(vnc("passwd='Ab3dEf7h' passwdValidTo='2026-12-06T12:01:00'"), NOW).inlineSecrets,
    ).toEqual([]);
    // Expired: it opens nothing any more.
    expect(
      domainFactsOf(vnc("passwd='Ab3dEf7h' passwdValidTo='2026-12-06T11:00:00'"), NOW).inlineSecrets,
    ).toEqual([]);
  });

  it("a password without expiry, or valid longer than a ticket can be, is", () => {
    expect(domainFactsOf(vnc("passwd='secret'"), NOW).inlineSecrets).toEqual([
      "<graphics type='vnc'> #1: passwd=",
    ]);
    expect(
      domainFactsOf(vnc("passwd='secret' passwdValidTo='2099-01-01T00:00:00'"), NOW).inlineSecrets,
    ).toHaveLength(1);
  });
});
