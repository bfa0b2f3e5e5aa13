// The host report is defined once (zod, src/detect/types.ts): every report detection produces, from
// the shared real-machine snapshots, the synthetic trees and this machine live, conforms to it, and a
// report read back with `answer validate --report` is checked against it field by field.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readReport } from "../../src/cli/answer-command.js";
import { detectHost } from "../../src/detect/index.js";
import { hostReport } from "../../src/detect/types.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { HOSTS, SKIP_REASON, sharedHostRoot, sharedHostsAvailable } from "../helpers/shared-hosts.js";
import { buildDmarBridgeHost, buildSriovHost, buildVfioGpuHost } from "../helpers/sysfs-fixture.js";

const detect = (root: string) =>
  detectHost({ fs: new RootedHostFs(root), probe: { mode: "never" }, pciIds: null });
const problems = (data: unknown) => {
  const r = hostReport.safeParse(data);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
};

describe("every detected report conforms to the one host-report schema", () => {
  it.skipIf(!sharedHostsAvailable)(
    `on the four shared snapshots${sharedHostsAvailable ? "" : ` (${SKIP_REASON})`}`,
    async () => {
      for (const h of HOSTS) expect(problems(await detect(sharedHostRoot(h))), h).toEqual([]);
    },
  );

  it("on the synthetic SR-IOV, VFIO-GPU and DMAR trees", async () => {
    for (const build of [buildSriovHost, buildVfioGpuHost, buildDmarBridgeHost]) {
      const fx = build();
      try {
        expect(problems(await detect(fx.root)), build.name).toEqual([]);
      } finally {
        fx.cleanup();
      }
    }
  });

  it("on this machine, live", async () => {
    expect(problems(await detect("/"))).toEqual([]);
  });
});

describe("answer validate --report reads a report through the schema", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "kvmstrap-report-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, data: unknown) => {
    const file = path.join(dir, name);
    writeFileSync(file, JSON.stringify(data));
    return file;
  };

  it("accepts what detect --json writes, wrapped or bare", async () => {
    const fx = buildSriovHost();
    try {
      const report = await detect(fx.root);
      expect(await readReport(write("bare.json", report))).toEqual(report);
      expect(await readReport(write("wrapped.json", { report, checks: [], verdict: "ready" }))).toEqual(
        report,
      );
    } finally {
      fx.cleanup();
    }
  });

  it("names the first field that is wrong, as an input error", async () => {
    const fx = buildSriovHost();
    try {
      const report = await detect(fx.root);
      const broken = { ...report, nics: [{ ...report.nics[0], mac: 42 }] };
      await expect(readReport(write("broken.json", broken))).rejects.toThrow(
        /broken\.json: nics\.0\.mac: .*string/,
      );
      await expect(readReport(write("other.json", { schema: "something-else" }))).rejects.toThrow(
        /not a kvmstrap host report/,
      );
    } finally {
      fx.cleanup();
    }
  });
});
