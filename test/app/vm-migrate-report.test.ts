// The target's report file as `vm migrate` and `host drain` read it (src/app/vm-migrate.ts): the
// fields the check uses are checked for their types without loading the report's whole schema, so a
// real machine's `detect --json` is taken and a file that is not a report is refused naming the key.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readTargetReport } from "../../src/app/vm-migrate.js";
import { InputError } from "../../src/core/errors.js";
import { detectHost } from "../../src/detect/index.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";

const dir = mkdtempSync(path.join(tmpdir(), `kvmstrap-migrate-report-${process.pid}-`));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
};

describe.skipIf(!sharedHostsAvailable)(`a real machine's report (${SKIP_REASON})`, () => {
  it("the Xeon server's detect --json (wrapped) and its bare report are both taken", async () => {
    const report = await detectHost({
      fs: new RootedHostFs(sharedHostRoot("intel-xeon-gold-5218r-server")),
      probe: { mode: "never" },
      pciIds: null,
    });
    const wrapped = await readTargetReport(file("xeon.json", JSON.stringify({ report, checks: [] })));
    expect(wrapped.pci.length).toBe(report.pci.length);
    expect(wrapped.cpu.vendor).toBe("GenuineIntel");
    const bare = await readTargetReport(file("xeon-bare.json", JSON.stringify(report)));
    expect(bare.nics.map((n) => n.name)).toEqual(report.nics.map((n) => n.name));

    const broken = { ...report, nics: [{ name: 7, kind: "bridge" }] };
    await expect(readTargetReport(file("nics.json", JSON.stringify({ report: broken })))).rejects.toThrow(
      /not a host report \(nics: expected an array of interfaces with a name and kind\)/,
    );
    const noPages = { ...report, memory: { ...report.memory, hugepages: { "2048kB": { total: 1 } } } };
    await expect(readTargetReport(file("pages.json", JSON.stringify(noPages)))).rejects.toThrow(
      /memory\.hugepages: expected counts by page size/,
    );
  });
});

describe("files that are not reports", () => {
  it("not JSON, not an object, a missing file: an input error naming the file", async () => {
    const notJson = file("x.json", "{ nope");
    await expect(readTargetReport(notJson)).rejects.toThrow(InputError);
    await expect(readTargetReport(notJson)).rejects.toThrow(`--target-report ${notJson}: not JSON`);
    await expect(readTargetReport(file("arr.json", "[1,2]"))).rejects.toThrow(
      /not a host report \(report: expected an object\)/,
    );
    await expect(readTargetReport(file("cpu.json", '{"cpu": {"vendor": 1}}'))).rejects.toThrow(
      /not a host report \(cpu: expected vendor and model\)/,
    );
    await expect(readTargetReport(path.join(dir, "absent.json"))).rejects.toThrow(/ENOENT/);
  });
});
