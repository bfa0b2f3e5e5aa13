// The crm_mon XML reader against real output: two samples that ha.cluster.test.ts kept from a live
// two-host cluster (HA_CRM_MON_DIR): the VM running on A, and just after A was killed, fenced and the
// VM recovered on B; and crm_mon over a CIB file with no cluster (no DC, so quorum unknown).
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { CRM_MON_MAX_BYTES, parseCrmMon, parseCrmTime } from "../../src/host/crm-mon.js";

const sample = (name: string) =>
  readFileSync(path.join(import.meta.dirname, "fixtures/crm-mon", `${name}.xml`), "utf8");
const vmId = (xml: string) => /id="(vm-ha-[0-9-]+)"/.exec(xml)?.[1] ?? "";

describe("parseCrmMon", () => {
  it("a quorate cluster with the VM started on A and each fence device on the other member", () => {
    const xml = sample("running-on-a");
    const s = parseCrmMon(xml);
    expect(s.quorate).toBe(true);
    expect(s.stonithEnabled).toBe(true);
    expect(s.nodes.map((n) => [n.name, n.online, n.unclean])).toEqual([
      ["kvmcl-a", true, false],
      ["kvmcl-b", true, false],
    ]);
    expect(s.resources.find((r) => r.id === vmId(xml))).toMatchObject({
      agent: "ocf:heartbeat:VirtualDomain",
      role: "Started",
      nodes: ["kvmcl-a"],
    });
    expect(s.resources.find((r) => r.id === "fence-kvmcl-a")?.nodes).toEqual(["kvmcl-b"]);
    expect(s.resources.find((r) => r.id === "fence-kvmcl-b")?.nodes).toEqual(["kvmcl-a"]);
    expect(s.fencing).toEqual([]);
  });

  it("after a failover: A offline and fenced by B, the VM on B", () => {
    const xml = sample("after-failover");
    const s = parseCrmMon(xml);
    expect(s.quorate).toBe(true);
    expect(s.dc).toBe("kvmcl-b");
    expect(s.nodes.find((n) => n.name === "kvmcl-a")).toMatchObject({ online: false, unclean: false });
    expect(s.resources.find((r) => r.id === vmId(xml))?.nodes).toEqual(["kvmcl-b"]);
    expect(s.fencing).toHaveLength(1);
    const f = s.fencing[0];
    expect(f).toMatchObject({ action: "reboot", target: "kvmcl-a", delegate: "kvmcl-b", status: "success" });
    expect(f?.completedAt?.toISOString()).toBe(`${f?.completed?.replace(" ", "T").replace("Z", "")}.000Z`);
  });

  it("no DC: quorum unknown, resources listed stopped", () => {
    const s = parseCrmMon(sample("no-dc-cib-file"));
    expect(s.quorate).toBeNull();
    expect(s.dc).toBeNull();
    expect(s.nodes).toEqual([]);
    expect(s.resources.every((r) => r.role === "Stopped" && r.nodes.length === 0)).toBe(true);
  });

  it("resources inside groups and clones, a failed fence", () => {
    const s = parseCrmMon(`<pacemaker-result api-version="2.25"><resources>
      <group id="g" number_resources="1"><resource id="r1" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true" failed="false" managed="true"><node name="n1" id="1"/></resource></group>
      <clone id="c" multi_state="false"><resource id="r2" resource_agent="ocf:heartbeat:Dummy" role="Started" active="true"><node name="n2" id="2"/></resource></clone>
      </resources><fence_history><fence_event action="off" target="n3" status="failed" exit-reason="timed out" completed="2026-12-06 10:00:00 +01:00"/></fence_history>
      <status code="0" message="OK"/></pacemaker-result>`);
    expect(s.resources.map((r) => [r.id, r.nodes])).toEqual([
      ["r1", ["n1"]],
      ["r2", ["n2"]],
    ]);
    expect(s.fencing[0]).toMatchObject({ status: "failed", exitReason: "timed out", delegate: null });
    expect(s.fencing[0]?.completedAt?.toISOString()).toBe("2026-12-06T09:00:00.000Z");
  });

  it("refuses what is not crm_mon output, a failed run, and oversized input", () => {
    expect(() => parseCrmMon("<html/>")).toThrow(/not crm_mon XML/);
    expect(() =>
      parseCrmMon(`<pacemaker-result><status code="102" message="Not connected"/></pacemaker-result>`),
    ).toThrow(/crm_mon failed: Not connected/);
    expect(() => parseCrmMon(" ".repeat(CRM_MON_MAX_BYTES + 1))).toThrow(/larger than/);
  });

  it("parseCrmTime reads each of crm_mon's formats and rejects others", () => {
    expect(parseCrmTime("2026-12-06 12:17:43Z")?.toISOString()).toBe("2026-12-06T12:17:43.000Z");
    expect(parseCrmTime("2026-12-06 12:17:43.250 -02:30")?.toISOString()).toBe("2026-12-06T14:47:43.250Z");
    expect(parseCrmTime("Sun Dec  6 12:17:44 2026")).toBeInstanceOf(Date);
    expect(parseCrmTime("soon")).toBeNull();
  });
});
