// The collector as it ships (no runner given): its virsh passes go to one long-lived virsh
// (src/vm/virsh-session.ts), here the real virsh on libvirt's test driver (test:///default, no
// daemon). Two scrapes are served by one virsh process, and close() ends it; the CLI's --once
// prints a scrape and exits with no virsh left behind.
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { metricsCollector } from "../../src/app/metrics.js";
import { metricsCommand } from "../../src/cli/metrics-command.js";
import { captureCli } from "../helpers/capture-cli.js";

const hasVirsh = (() => {
  try {
    execFileSync("virsh", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
/** The virsh processes this test file's process started (the fast tier runs each file in a fork). */
const ourVirshes = () =>
  execFileSync("sh", ["-c", `pgrep -P ${process.pid} -x virsh || true`])
    .toString()
    .split(/\s+/)
    .filter(Boolean);

let root = "";
beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), `kvmstrap-metrics-session-${process.pid}-`));
});
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe.skipIf(!hasVirsh)("kvmstrap metrics over a kept virsh (skipped without virsh)", () => {
  it("two scrapes on one virsh process; close() ends it", async () => {
    const scrape = metricsCollector({ uri: "test:///default", root });
    try {
      const first = await scrape();
      expect(first.text).toMatch(/^kvmstrap_source_up\{source="libvirt"\} 1$/m);
      expect(first.text).toMatch(/^kvmstrap_domain_state\{domain="test",state="running"\} 1$/m);
      const ours = ourVirshes();
      expect(ours).toHaveLength(1);
      await scrape();
      expect(ourVirshes()).toEqual(ours);
    } finally {
      await scrape.close();
    }
    expect(ourVirshes()).toEqual([]);
  });

  it("--once prints one scrape and leaves no virsh running", async () => {
    const r = await captureCli(() =>
      metricsCommand(["--once", "--connect", "test:///default", "--root", root]),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^kvmstrap_domain_state\{domain="test",state="running"\} 1$/m);
    expect(ourVirshes()).toEqual([]);
  });
});
