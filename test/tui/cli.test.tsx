// `kvmstrap tui` without a terminal: a clear message pointing to detect/apply, and exit 2.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { tuiCommand } from "../../src/cli/tui-command.js";
import { projectRoot } from "../helpers/shared-hosts.js";

describe("kvmstrap tui without a TTY", () => {
  it("explains and exits 2 (in process)", async () => {
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => writes.push(String(s)) > 0) as typeof process.stderr.write;
    try {
      expect(await tuiCommand([])).toBe(2);
    } finally {
      process.stderr.write = orig;
    }
    expect(writes.join("")).toMatch(/needs a terminal[\s\S]*kvmstrap detect[\s\S]*kvmstrap apply/);
  });

  it("explains and exits 2 (a real process with pipes)", () => {
    const r = spawnSync(process.execPath, [path.join(projectRoot, "test/tui/launch.mjs")], {
      input: "",
      encoding: "utf8",
      timeout: 15_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain("kvmstrap detect");
  });

  it("rejects --root with --snapshot", async () => {
    await expect(tuiCommand(["--root", "/", "--snapshot", "x.tar.gz"])).rejects.toThrow(/cannot be combined/);
  });
});
