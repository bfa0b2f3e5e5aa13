// `kvmstrap serve --interface IF` on an interface without carrier: a bridge whose only port is the tap
// of a VM not yet started (how the PXE chain tests, and a host PXE-booting its own VMs, set it up), or
// a NIC before its first node is powered on. Node's os.networkInterfaces() leaves such an interface
// out, and the server used to refuse to start ("no such interface, or it has no IPv4 address"); the
// full-DHCP chain test hit it on the server's restart between two guests. The built CLI, as root in
// a network namespace.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { projectRoot } from "../../helpers/shared-hosts.js";
import { Lines, Netns, netnsUnavailable, removeTempDirs, tempDir } from "../dhcp4/netns.js";

const bin = path.join(projectRoot, "bin/kvmstrap.js");
const why =
  netnsUnavailable() ??
  (existsSync(path.join(projectRoot, "dist/cli/serve-command.js"))
    ? undefined
    : "dist/ not built (npm run build)");

let ns: Netns;

beforeAll(async () => {
  if (why) return;
  ns = new Netns(`kvms-sif-${process.pid}`);
  ns.bridge("br0", "10.84.0.1/24");
  ns.tap("tap0", "br0"); // no QEMU behind it: the port has no carrier, and so has the bridge
  ns.bridge("br1"); // up, no IPv4 address
  for (let i = 0; i < 50 && !ns.ip("link", "show", "br0").includes("NO-CARRIER"); i++)
    await new Promise((r) => setTimeout(r, 100));
});
afterAll(() => {
  ns?.destroy();
  removeTempDirs();
});

describe.skipIf(why)(`serve --interface without carrier${why ? ` (skipped: ${why})` : ""}`, () => {
  it("starts full DHCP on a bridge with no carrier, with the bridge's address as the server's", async () => {
    expect(ns.ip("link", "show", "br0")).toContain("NO-CARRIER");
    // What Node itself sees in there: not the bridge.
    const listed = ns.exec("node", [
      "-e",
      "console.log(Object.keys(require('os').networkInterfaces()).join(' '))",
    ]);
    expect(listed.split(/\s+/)).not.toContain("br0");
    const child = ns.spawn("node", [
      bin,
      "serve",
      ...["--dhcp", "full", "--dhcp-range", "10.84.0.100-10.84.0.110", "--interface", "br0"],
      ...["--http-port", "8080", "--state-dir", tempDir("sif-state"), "--json"],
    ]);
    const lines = new Lines(child);
    const exit = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    const first = await lines.wait((o) => o.type === "listening", 15_000, "listening");
    expect(first).toMatchObject({
      http: "http://10.84.0.1:8080",
      dhcp: "full on br0 as 10.84.0.1 range 10.84.0.100-10.84.0.110",
    });
    // Serving: its status answers over HTTP on the bridge's address (the curl also gives the CLI
    // time to install its SIGTERM handler, which it does just after printing "listening").
    const status = JSON.parse(ns.exec("curl", ["-sS", "--max-time", "5", "http://10.84.0.1:8080/v1/status"]));
    expect(status.server.dhcp).toBe("full on br0 as 10.84.0.1 range 10.84.0.100-10.84.0.110");
    child.kill("SIGTERM");
    expect(await exit).toBe(0);
  });

  it("still refuses an interface without an IPv4 address, or none at all, with exit 2 and one line", () => {
    for (const dev of ["br1", "nosuchdev0"]) {
      const r = spawnSync(
        "ip",
        [
          "netns",
          "exec",
          ns.name,
          "node",
          bin,
          "serve",
          "--dhcp",
          "proxy",
          "--interface",
          dev,
          "--state-dir",
          tempDir("sif-bad"),
        ],
        { encoding: "utf8", timeout: 15_000 },
      );
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim()).toBe(
        `kvmstrap: --interface ${dev}: no such interface, or it has no IPv4 address`,
      );
    }
  });
});
