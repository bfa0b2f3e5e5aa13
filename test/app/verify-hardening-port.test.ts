// verify's hardening facts come through the Libvirt port only: the domain XML is asked for with
// securityInfo, without which libvirt (and the fake, as libvirt does) leaves a graphics password
// out and hardening.secrets could not see it. The real virsh --security-info is the e2e tier's
// (test/e2e/hardening.e2e.test.ts).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { hardeningChecks } from "../../src/app/verify-hardening.js";
import { readHardeningFacts } from "../../src/app/verify-hardening-read.js";
import { RootedHostFs } from "../../src/host/fs.js";
import { FakeLibvirt } from "../vm/fake-libvirt.js";

const UNSAFE = readFileSync(path.join(import.meta.dirname, "hardening", "unsafe.xml"), "utf8");
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("verify hardening through the Libvirt port", () => {
  it("asks for the XML with securityInfo, so a graphics password is reported, never its value", async () => {
    const root = mkdtempSync(path.join(tmpdir(), `kvmstrap-hardening-port-${process.pid}-`));
    dirs.push(root);
    mkdirSync(path.join(root, "proc"));
    const lv = new FakeLibvirt();
    await lv.defineDomain(UNSAFE);
    // The fake hides it unless asked, as libvirt does: the check below depends on the option.
    expect(await lv.domainXml("risky")).not.toMatch(/passwd=/);
    const f = await readHardeningFacts({
      fs: new RootedHostFs(root),
      live: true,
      libvirt: lv,
      allowList: [],
    });
    expect(lv.calls).toContain("domainXml:securityInfo");
    const secrets = hardeningChecks(f).find((c) => c.id === "hardening.secrets");
    expect(secrets?.status).toBe("fail");
    expect(secrets?.found).toContain("domain risky: <graphics type='vnc'> #1: passwd=");
    expect(JSON.stringify(secrets)).not.toContain("hunter2");
  });
});
