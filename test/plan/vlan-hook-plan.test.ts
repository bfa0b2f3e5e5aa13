// The qemu hook that keeps a VM's VLAN on a VLAN-aware Linux bridge: planned when the answer gives a
// VM such a VLAN on a kernel with bridge VLAN filtering (golden: test/plan/golden-networks/bridge-vlan.txt,
// reviewed), with its inverse; not planned when the rule set refused the VLAN, nor when the hook is
// already there.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan } from "../../src/plan/index.js";
import { VLAN_HOOK_PATH, vlanHookScript } from "../../src/plan/vlan-hook-plan.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});
const filtering = (bridgeVlanFiltering: boolean): HostReport => ({
  ...lab,
  vswitch: { ovsModule: true, bridgeVlanFiltering, sources: {} },
});

const ANSWER = `version: 1
network:
  stack: networkd
  bridges:
    - { name: br1, vlanAware: true }
vms:
  - name: web1
    image: /var/lib/kvmstrap/images/debian-12.qcow2
    vcpus: 1
    memoryMiB: 512
    diskGiB: 4
    user: { name: debian, sshKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKeyOnlyReplaceMeWithYourOwnPublicKey ops@laptop"] }
    nics: [{ bridge: br1, vlan: 30 }, { bridge: br1 }]
`;
const plan = (report: HostReport, current = new Map<string, string | null>()) =>
  buildPlan(report, parseAnswerText(ANSWER, "answer.yaml"), current);
const hookIds = (p: ReturnType<typeof plan>) =>
  p.actions.filter((a) => a.id.startsWith("vlan-hook.")).map((a) => a.id);

describe("the VLAN hook in the plan", () => {
  it("with filtering: the hook script (0755, its inverse restores the prior state) and libvirtd restarted, before the VM", async () => {
    const p = plan(filtering(true));
    expect(p.refusals).toEqual([]);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-networks/bridge-vlan.txt");
    expect(hookIds(p)).toEqual([
      "vlan-hook.libvirtd-restart-on-undo",
      "vlan-hook.script",
      "vlan-hook.libvirtd-restart",
    ]);
    const script = p.actions.find((a) => a.id === "vlan-hook.script");
    expect(script).toMatchObject({ kind: "write-file", path: VLAN_HOOK_PATH, mode: 0o755, previous: null });
    expect(vlanHookScript()).toContain('exec /usr/bin/env kvmstrap libvirt-hook qemu -- "$@"');
    const at = (id: string) => p.actions.findIndex((a) => a.id === id);
    const define = p.actions.find((a) => a.kind === "libvirt" && a.op === "define-domain");
    expect(at("vlan-hook.libvirtd-restart")).toBeLessThan(p.actions.indexOf(define as never));
    // The VM's VLAN is in its domain XML's kvmstrap metadata, keyed by the NIC's MAC.
    expect(define && "xml" in define && define.xml).toMatch(
      /<kvmstrap:port mac="52:54:00:[0-9a-f:]{8}" vlan="30"\/>/,
    );
  });

  it("without filtering the VLAN is refused and no hook is planned; an installed hook is not rewritten", () => {
    const refused = plan(filtering(false));
    expect(refused.refusals.map((r) => r.path)).toContain("vms[0].nics[0].vlan");
    expect(hookIds(refused)).toEqual([]);
    expect(hookIds(plan(filtering(true), new Map([[VLAN_HOOK_PATH, vlanHookScript()]])))).toEqual([]);
  });
});
