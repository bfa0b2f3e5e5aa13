// `kvmstrap detect` reports each interface's addresses: on a live host from the kernel (`ip -j addr`,
// run by the built CLI inside a network namespace of this test's own, with a veth pair, addresses
// and a default route set by real `ip`), and as "unknown" on a snapshot, which captures none.
import { execFile, execFileSync } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HOSTS,
  projectRoot,
  SKIP_REASON,
  sharedHostRoot,
  sharedHostsAvailable,
} from "../helpers/shared-hosts.js";
import { netnsUnavailable } from "../pxe/dhcp4/netns.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
// ip by its path, so a test can give the CLI a PATH without it.
const ipPath = () => execFileSync("sh", ["-c", "command -v ip"], { encoding: "utf8" }).trim();
const detect = async (args: string[], opts: { netns?: string; env?: Record<string, string> } = {}) => {
  const argv = [process.execPath, bin, "detect", "--probe", "never", "--no-color", ...args];
  const [file, rest] = opts.netns
    ? [ipPath(), ["netns", "exec", opts.netns, ...argv]]
    : [argv[0] ?? "", argv.slice(1)];
  try {
    const r = await promisify(execFile)(file, rest, {
      env: { ...process.env, NO_COLOR: "1", ...opts.env },
      maxBuffer: 64 << 20,
    });
    return r.stdout;
  } catch (e) {
    // Exit 1 is a verdict (a check failed), not a failure of the command: its output is the report.
    const err = e as { code: number; stdout: string; stderr: string };
    if (err.code === 1) return err.stdout;
    throw new Error(`detect exited ${err.code}: ${err.stderr}`);
  }
};
type Nic = { name: string | null; management: boolean; addresses?: unknown; sources: Record<string, string> };
const nicsOf = (json: string): Nic[] => JSON.parse(json).report.nics;
const section = (text: string) => text.slice(text.indexOf("NICs ("), text.indexOf("\nDisks ("));

const unavailable = netnsUnavailable();
const NS = `kvms-addr-${process.pid}`;
const V6 = ["2001:db8::7", "2001:db8:0:1::7", "2001:db8:0:2::7", "2001:db8:0:3::7", "2001:db8:0:4::7"];

describe.skipIf(unavailable !== undefined)(
  `on a live host (a namespace of its own)${unavailable ? ` (skipped: ${unavailable})` : ""}`,
  () => {
    const ip = (...args: string[]) => execFileSync("ip", ["-n", NS, ...args]);
    beforeAll(() => {
      execFileSync("ip", ["netns", "add", NS]);
      ip("link", "add", "v0", "type", "veth", "peer", "name", "v1");
      ip("link", "set", "v0", "up");
      ip("addr", "add", "198.51.100.7/24", "dev", "v0");
      for (const a of V6) ip("addr", "add", `${a}/64`, "dev", "v0", "nodad");
      ip("route", "add", "default", "via", "198.51.100.1");
    });
    afterAll(() => {
      execFileSync("ip", ["netns", "del", NS]);
    });

    it("gives each interface's IPv4 and IPv6 addresses with their prefix, and which has the default route", async () => {
      const nics = nicsOf(await detect(["--json"], { netns: NS }));
      const v0 = nics.find((n) => n.name === "v0");
      const v1 = nics.find((n) => n.name === "v1");
      expect(v0?.management).toBe(true);
      expect(v0?.sources.addresses).toBe("ip -j addr show");
      expect(v0?.addresses).toEqual(
        expect.arrayContaining([
          { family: "inet", address: "198.51.100.7", prefixLength: 24, scope: "global" },
          ...V6.map((address) => ({ family: "inet6", address, prefixLength: 64, scope: "global" })),
        ]),
      );
      // v1 is down with no address: an empty list, known, not "unknown".
      expect(v1?.management).toBe(false);
      expect(v1?.addresses).toEqual([]);
    });

    it("shows them under their interface in the text report, within 80 columns", async () => {
      const text = section(await detect([], { netns: NS }));
      // The kernel's order (the newest IPv6 first), wrapped with the continuation under the first.
      expect(text).toMatch(
        /\n {2}v0 [^\n]*(\n {6})?\[management\]\n {6}198\.51\.100\.7\/24 2001:db8:\S+\/64 .*\n {6}2001:db8:/,
      );
      for (const a of V6) expect(text).toContain(`${a}/64`);
      for (const line of text.split("\n")) expect(line.length, line).toBeLessThanOrEqual(80);
      expect(text).not.toContain("addresses: unknown");
    });

    it("says unknown, with a warning, when ip cannot be run", async () => {
      const out = JSON.parse(await detect(["--json"], { netns: NS, env: { PATH: "/nonexistent" } }));
      expect(out.report.nics.find((n: Nic) => n.name === "v0")?.addresses).toBe("unknown");
      expect(out.report.warnings).toContainEqual({
        path: "ip -j addr show",
        message: "interface addresses unknown: ip could not be run (is iproute2 installed?)",
      });
    });
  },
);

describe.skipIf(!sharedHostsAvailable)(
  `on the shared snapshots${sharedHostsAvailable ? "" : ` (${SKIP_REASON})`}`,
  () => {
    it("every interface's addresses are unknown (never an empty list), and the text says so once", async () => {
      for (const h of HOSTS) {
        const nics = nicsOf(await detect(["--json", "--root", sharedHostRoot(h)]));
        for (const n of nics) expect(n.addresses, `${h} ${n.name}`).toBe("unknown");
        const text = section(await detect(["--root", sharedHostRoot(h)]));
        if (nics.some((n) => n.name !== null))
          expect(text.match(/addresses: unknown \(not read from this root\)/g), h).toHaveLength(1);
      }
    });
  },
);
