// The identifier grammars (src/core/grammar.ts) hold on both doors: the answer schema refuses a bad
// value with a located error, and the VM seed (cloud-init) accepts exactly what the answer accepts.
import { describe, expect, it } from "vitest";
import { AnswerError, parseAnswerText } from "../../src/answer/load.js";
import { HOSTNAME, OBJECT_NAME, PASSWORD_HASH, SSH_PUBLIC_KEY } from "../../src/core/grammar.js";
import { seedInputSchema } from "../../src/vm/cloud-init.js";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@laptop";
const SCRYPT = "$7$CU..../....abcdefghijklmnop$0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
const SHA512 =
  "$6$rounds=5000$examplesalt$Qm9uZ3VzSGFzaEZvckV4YW1wbGVPbmx5Lk5vdEFSZWFsUGFzc3dvcmQuLi4uLi4uLi4u";

/** The first located error of an answer text, as answer validate prints it. */
function refusal(yaml: string): string {
  try {
    parseAnswerText(`version: 1\n${yaml}`, "a.yaml");
  } catch (e) {
    if (!(e instanceof AnswerError)) throw e;
    const i = e.issues[0];
    return `${i?.line}:${i?.path}: ${i?.message}`;
  }
  return "accepted";
}

const seedAccepts = (user: { sshKeys?: string[]; passwordHash?: string }) =>
  seedInputSchema.safeParse({ hostname: "web1", user: { name: "ops", sshKeys: [], ...user } }).success;

describe("identifier grammars at the answer file's door", () => {
  it("a 304-character host name is refused at its line (RFC 1123: 253 at most, labels of 63)", () => {
    const long = Array(5).fill("a".repeat(60)).join(".");
    expect(long).toHaveLength(304);
    expect(HOSTNAME.test(long)).toBe(false);
    expect(HOSTNAME.test(`${"a".repeat(64)}.example`)).toBe(false);
    expect(HOSTNAME.test("kvm01.example.net")).toBe(true);
    expect(refusal(`host:\n  hostname: ${long}`)).toMatch(/^3:host\.hostname: a host name \(RFC 1123\)/);
  });

  it("an SSH key holding a newline is refused: it would add a second authorized_keys line", () => {
    const injected = `${KEY}\\nssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC evil@attacker`;
    expect(refusal(`host:\n  users:\n    - name: ops\n      sshKeys: ["${injected}"]`)).toMatch(
      /^5:host\.users\[0\]\.sshKeys\[0\]: expected an OpenSSH public key on one line/,
    );
    expect(SSH_PUBLIC_KEY.test(KEY)).toBe(true);
    expect(SSH_PUBLIC_KEY.test("ssh-ed25519")).toBe(false);
    expect(SSH_PUBLIC_KEY.test("ssh-ed25519 AAAA")).toBe(false);
    expect(SSH_PUBLIC_KEY.test(KEY.replace("ssh-ed25519", "ssh-rsa"))).toBe(false); // blob names ed25519
    expect(SSH_PUBLIC_KEY.test(`command="sh" ${KEY}`)).toBe(false);
  });

  it("a hostdevNetwork name with ../ is refused before it becomes a path under /etc/kvmstrap", () => {
    expect(OBJECT_NAME.test("../../etc/cron.d/x")).toBe(false);
    expect(OBJECT_NAME.test("a..b")).toBe(false);
    expect(OBJECT_NAME.test("sriov-pool")).toBe(true);
    expect(
      refusal("sriov:\n  - pf: { name: enp3s0f0 }\n    numVfs: 2\n    hostdevNetwork: ../../etc/cron.d/x"),
    ).toMatch(/^5:sriov\[0\]\.hostdevNetwork: expected a name of 1-64 letters/);
    expect(refusal("storage:\n  pools:\n    - { name: '..', type: dir, path: /srv }")).toMatch(
      /^4:storage\.pools\[0\]\.name:/,
    );
  });

  it("interface names '.' and '..' are refused", () => {
    expect(refusal("network:\n  bridges:\n    - name: '..'")).toMatch(/^4:network\.bridges\[0\]\.name:/);
  });

  it("the VM seed accepts exactly the keys and hashes the answer accepts ($7$ included)", () => {
    const cases: [string, { sshKeys?: string[]; passwordHash?: string }][] = [
      ["scrypt", { passwordHash: SCRYPT }],
      ["sha-512 with rounds", { passwordHash: SHA512 }],
      ["a bare $6$", { passwordHash: "$6$" }],
      ["a plain password", { passwordHash: "hunter2" }],
      ["an ed25519 key", { sshKeys: [KEY] }],
      ["a bare key type", { sshKeys: ["ssh-ed25519"] }],
      ["a key with a newline", { sshKeys: [`${KEY}\nssh-rsa AAAA x`] }],
    ];
    for (const [what, user] of cases) {
      const answer =
        user.passwordHash !== undefined
          ? PASSWORD_HASH.test(user.passwordHash)
          : (user.sshKeys ?? []).every(SSH_PUBLIC_KEY.test);
      expect([what, seedAccepts(user)]).toEqual([what, answer]);
    }
    expect(PASSWORD_HASH.test(SCRYPT)).toBe(true);
  });
});
