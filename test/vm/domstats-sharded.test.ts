// The pass split over kept virsh sessions (readDomstatsSharded): on real virsh (libvirt's test
// driver, a node file of several running domains, no daemon) the split pass reports what one call
// reports; on scripted sessions, each domain is asked once, a domain gone between the list and its
// share costs one new pass and not the scrape, and names virsh's shell would not take as plain words
// give the one-call pass.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CommandResult } from "../../src/host/commands.js";
import { type DomstatsSession, readDomstatsOver, readDomstatsSharded } from "../../src/vm/domstats.js";
import { LibvirtError } from "../../src/vm/libvirt-error.js";
import { VirshSession } from "../../src/vm/virsh-session.js";

const hasVirsh = (() => {
  try {
    execFileSync("virsh", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();

const testDomain = (name: string) =>
  `<domain type="test"><name>${name}</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os></domain>`;

describe.skipIf(!hasVirsh)(
  "the split pass on real virsh (libvirt's test driver; skipped without virsh)",
  () => {
    let dir = "";
    beforeAll(async () => {
      dir = await mkdtemp(path.join(tmpdir(), `kvmstrap-domstats-shard-${process.pid}-`));
      const names = ["web1", "web2", "db1", "db2", "cache1"];
      await writeFile(path.join(dir, "node.xml"), `<node>${names.map(testDomain).join("")}</node>`);
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("over three sessions reports every domain once, as one call does", async () => {
      const uri = `test://${path.join(dir, "node.xml")}`;
      const sessions = [new VirshSession(uri), new VirshSession(uri), new VirshSession(uri)];
      try {
        const split = await readDomstatsSharded(sessions);
        const whole = await readDomstatsOver(sessions[0] as VirshSession);
        const byName = (xs: typeof split) => [...xs].sort((a, b) => a.name.localeCompare(b.name));
        expect(split.map((d) => d.name)).toEqual(["web1", "web2", "db1", "db2", "cache1"]);
        expect(byName(split)).toEqual(byName(whole));
        expect(split.every((d) => d.state === "running")).toBe(true);
        // Each session answered a share: three virsh processes were started.
        expect(sessions.every((s) => s.pid !== null)).toBe(true);
      } finally {
        await Promise.all(sessions.map((s) => s.close()));
      }
    });
  },
);

const ok = (stdout: string): CommandResult => ({ exitCode: 0, stdout, stderr: "", timedOut: false });
const failed = (stderr: string): CommandResult => ({ exitCode: 1, stdout: "", stderr, timedOut: false });
const stats = (names: string[]) =>
  names.map((n) => `Domain: '${n}'\n  state.state=1\n  state.reason=1\n`).join("\n");

/**
 * Sessions answering from a list of domains that can change between calls: `list` prints it, and
 * `domstats ... NAMES` fails like virsh on a name not in it.
 */
function scripted(count: number, lists: string[][]) {
  const asked: string[][] = [];
  let listed = 0;
  const current = () => lists[Math.min(listed, lists.length) - 1] ?? [];
  const session = (): DomstatsSession => ({
    async run(words) {
      asked.push([...words]);
      if (words[0] === "list") {
        listed++;
        return ok(`${current().join("\n")}\n`);
      }
      const named = words.filter((w) => !w.startsWith("--") && w !== "domstats");
      // The domain list may have moved on since this pass's list (a domain undefined meanwhile).
      const now = lists[Math.min(listed, lists.length - 1)] ?? [];
      const gone = named.find((n) => !now.includes(n));
      if (gone) return failed(`error: failed to get domain '${gone}'\n`);
      return ok(stats(named.length ? named : now));
    },
  });
  return { sessions: Array.from({ length: count }, session), asked };
}

describe("the split pass's bookkeeping", () => {
  it("asks each domain of the list once, in shares, and keeps the list's order", async () => {
    const { sessions, asked } = scripted(3, [["a", "b", "c", "d", "e"]]);
    const got = await readDomstatsSharded(sessions);
    expect(got.map((d) => d.name)).toEqual(["a", "b", "c", "d", "e"]);
    const shares = asked
      .filter((w) => w[0] === "domstats")
      .map((w) => w.filter((x) => !x.startsWith("-")).slice(1));
    expect(shares.flat().sort()).toEqual(["a", "b", "c", "d", "e"]);
    expect(shares).toHaveLength(3);
  });

  it("a domain undefined between the list and its share: one new pass on a new list", async () => {
    // The first list has "b"; by the time its share is asked, "b" is gone (the second list).
    const { sessions, asked } = scripted(2, [
      ["a", "b", "c"],
      ["a", "c"],
    ]);
    const got = await readDomstatsSharded(sessions);
    expect(got.map((d) => d.name)).toEqual(["a", "c"]);
    expect(asked.filter((w) => w[0] === "list")).toHaveLength(2);
  });

  it("a second miss fails the pass with libvirt's reason", async () => {
    const { sessions } = scripted(2, [["a", "b"], ["a", "x"], ["a"]]);
    const err = await readDomstatsSharded(sessions).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtError);
    expect((err as LibvirtError).code).toBe("no-domain");
  });

  it("a name that is not a plain word (a space, a leading dash) gives the one-call pass", async () => {
    for (const odd of ["my vm", "-x"]) {
      const { sessions, asked } = scripted(3, [["a", odd, "c"]]);
      const got = await readDomstatsSharded(sessions);
      expect(got.map((d) => d.name).sort()).toEqual(["a", "c", odd].sort());
      const domstats = asked.filter((w) => w[0] === "domstats");
      expect(domstats).toHaveLength(1);
      expect(domstats[0]?.some((w) => !w.startsWith("-") && w !== "domstats")).toBe(false);
    }
  });

  it("one domain, or none: one call, no shares", async () => {
    const { sessions, asked } = scripted(4, [["only"]]);
    expect((await readDomstatsSharded(sessions)).map((d) => d.name)).toEqual(["only"]);
    expect(asked.filter((w) => w[0] === "domstats")).toEqual([
      ["domstats", "--state", "--cpu-total", "--balloon", "--interface", "--block"],
    ]);
  });
});
