// The long-lived virsh of `kvmstrap metrics` (src/vm/virsh-session.ts) with the real virsh on
// libvirt's test driver (test:///default, in the virsh process: no daemon): its replies match
// one-shot virsh runs, one process serves many commands, and its bounds hold: a command that fails,
// a virsh killed between commands, a libvirt that never answers (a socket that accepts and stays
// silent), a reply past the size bound, a virsh that is not there.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseDomstats, readDomstatsOver } from "../../src/vm/domstats.js";
import { LibvirtError } from "../../src/vm/libvirt-error.js";
import { VirshSession } from "../../src/vm/virsh-session.js";

const TEST_URI = "test:///default";
const LIMITS = { timeoutMs: 10_000, maxBytes: 1 << 20 };
const hasVirsh = (() => {
  try {
    execFileSync("virsh", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const oneShot = (...args: string[]) =>
  execFileSync("virsh", ["-c", TEST_URI, ...args], { env: { ...process.env, LC_ALL: "C" } }).toString();

const sessions: VirshSession[] = [];
const session = (uri = TEST_URI, virsh?: string) => {
  const s = new VirshSession(uri, virsh);
  sessions.push(s);
  return s;
};
afterAll(async () => {
  await Promise.all(sessions.map((s) => s.close()));
});

describe.skipIf(!hasVirsh)("VirshSession on libvirt's test driver (skipped without virsh)", () => {
  it("answers as one-shot virsh does, many commands on one process", async () => {
    const s = session();
    const first = await s.run(["domstats", "--state"], LIMITS);
    const pid = s.pid;
    expect(first.exitCode).toBe(0);
    expect(first.stderr).toBe("");
    expect(parseDomstats(first.stdout)).toEqual(parseDomstats(oneShot("domstats", "--state")));
    expect(first.stdout).not.toMatch(/virsh [#$]|kvmstrap-/);
    const list = await s.run(["list", "--all", "--name"], LIMITS);
    expect(list.stdout.trim()).toBe(oneShot("list", "--all", "--name").trim());
    expect(s.pid).toBe(pid);
    // Commands asked at once run one after the other, each with its own reply.
    const [a, b] = await Promise.all([s.run(["uri"], LIMITS), s.run(["hostname"], LIMITS)]);
    expect(a.stdout.trim()).toBe(TEST_URI);
    expect(b.stdout.trim()).toBe(oneShot("hostname").trim());
  });

  it("readDomstatsOver parses the pass (the test driver's running domain)", async () => {
    const domains = await readDomstatsOver(session(), LIMITS);
    expect(domains.map((d) => [d.name, d.state])).toEqual([["test", "running"]]);
  });

  it("a failed command says why, and the next one runs on a new virsh", async () => {
    const s = session();
    await s.run(["uri"], LIMITS);
    const pid = s.pid;
    const r = await s.run(["domstats", "no-such-domain"], LIMITS);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^error: .*no-such-domain/m);
    const next = await s.run(["uri"], LIMITS);
    expect(next.exitCode).toBe(0);
    expect(s.pid).not.toBe(pid);
  });

  it("a virsh killed between commands is replaced without failing the next command", async () => {
    const s = session();
    await s.run(["uri"], LIMITS);
    const pid = s.pid as number;
    process.kill(pid, "SIGKILL");
    await new Promise((r) => setTimeout(r, 100));
    const r = await s.run(["domstats", "--state"], LIMITS);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(parseDomstats(r.stdout).map((d) => d.name)).toEqual(["test"]);
    expect(s.pid).not.toBe(pid);
  });

  it("a libvirt that never answers is a timeout, and the virsh is ended", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-session-${process.pid}-`));
    const held: Socket[] = [];
    const server: Server = createServer((c) => held.push(c));
    const sock = path.join(dir, "silent.sock");
    await new Promise<void>((r) => server.listen(sock, r));
    try {
      const s = session(`qemu+unix:///system?socket=${sock}`);
      const t = performance.now();
      const r = await s.run(["domstats", "--state"], { timeoutMs: 400, maxBytes: 1 << 20 });
      expect(r.timedOut).toBe(true);
      expect(performance.now() - t).toBeLessThan(5000);
      expect(s.pid).toBeNull();
      await expect(readDomstatsOver(s, { timeoutMs: 300 })).rejects.toThrow(/no answer within 300 ms/);
    } finally {
      for (const c of held) c.destroy();
      server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a reply past the size bound ends the virsh; the error names the bound", async () => {
    const s = session();
    const r = await s.run(["domstats", "--state"], { timeoutMs: 10_000, maxBytes: 10 });
    expect(r.overflowed).toBe(true);
    expect(s.pid).toBeNull();
    await expect(readDomstatsOver(s, { maxBytes: 10 })).rejects.toThrow(/more than 10 bytes/);
  });

  it("a libvirtd that is not there is a connect error", async () => {
    const e = await readDomstatsOver(session("qemu+unix:///system?socket=/nonexistent/sock"), LIMITS).catch(
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(LibvirtError);
    expect((e as LibvirtError).code).toBe("connect");
  });
});

describe("VirshSession without virsh", () => {
  it("a virsh that is not installed: could not run it", async () => {
    const s = session(TEST_URI, "/nonexistent/virsh");
    const r = await s.run(["uri"], LIMITS);
    expect(r.exitCode).toBeUndefined();
    await expect(readDomstatsOver(s)).rejects.toThrow(/could not run virsh/);
  });

  it("takes plain words only (nothing for virsh's shell to parse)", () => {
    expect(() => session().run(["domstats", "a b"], LIMITS)).toThrow(/not a plain word/);
    expect(() => session().run(["echo", "x;quit"], LIMITS)).toThrow(/not a plain word/);
  });
});
