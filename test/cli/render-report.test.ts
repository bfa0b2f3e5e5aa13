import { describe, expect, it } from "vitest";
import { runChecks } from "../../src/checks/index.js";
import { renderReport, wrap } from "../../src/cli/render-report.js";
import { makeStyle } from "../../src/cli/style.js";
import { detectHost } from "../../src/detect/index.js";
import { buildDmarBridgeHost } from "../helpers/sysfs-fixture.js";

describe("the human report on an 80-column console", () => {
  it("wraps checks and remediations within the width, keeping their indentation", async () => {
    const fx = buildDmarBridgeHost().file(
      "/proc/cpuinfo",
      "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: vmx ept\n\n",
    );
    const report = await detectHost({ fs: fx.fs(), pciIds: null });
    const text = renderReport(report, runChecks(report), makeStyle({ isTTY: false }), 79);
    const checkLines = text.slice(text.indexOf("\nChecks")).split("\n").slice(1);
    expect(checkLines.length).toBeGreaterThan(10);
    for (const l of checkLines) if (!l.includes("/")) expect(l.length).toBeLessThanOrEqual(79);
    expect(text).toMatch(/\n {2}\[WARN\] iommu\.enabled: /);
    expect(text).toMatch(/\n {9}fix \(reboot\): Add "intel_iommu=on iommu=pt"/);
  });
  it("leaves scripts' output unwrapped at width 0", () => {
    const long = `  ${"word ".repeat(40).trim()}`;
    expect(wrap(long, 0, 4)).toBe(long);
    expect(
      wrap(long, 40, 4)
        .split("\n")
        .every((l) => l.length <= 40),
    ).toBe(true);
    expect(wrap(long, 40, 4).startsWith("  word")).toBe(true);
  });
});
