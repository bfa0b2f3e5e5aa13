// Plans for the answer's virtual networks, one golden file per case (test/plan/golden-networks/,
// reviewed): the text `kvmstrap plan` prints. On the lab host with detect's vswitch facts stated.
import { beforeAll, describe, expect, it } from "vitest";
import { parseAnswerText } from "../../src/answer/load.js";
import type { HostReport } from "../../src/detect/types.js";
import { renderPlanText } from "../../src/plan/diff.js";
import { buildPlan } from "../../src/plan/index.js";
import { labReport } from "../answer/hosts.js";

let lab: HostReport;
beforeAll(async () => {
  lab = await labReport();
});
const on = (ovsModule: boolean): HostReport => ({
  ...lab,
  vswitch: { ovsModule, bridgeVlanFiltering: false, sources: {} },
});
const plan = (yaml: string, report: HostReport) =>
  buildPlan(report, parseAnswerText(`version: 1\n${yaml}`, "answer.yaml"));

const NETWORKS = `network:
  libvirt:
    - { name: natnet, mode: nat, bridge: virbr10, address: 192.168.100.1/24, dhcpRange: [192.168.100.10, 192.168.100.99] }
    - { name: backend, mode: isolated, bridge: virbr11, address: 10.20.0.1/24, autostart: false }
  ovs:
    - { name: ovsbr0, uplink: enp5s0 }
`;

describe("plans for virtual networks", () => {
  it("no openvswitch module: the bridge in user space (netdev), its uplink, both libvirt networks", async () => {
    const p = plan(NETWORKS, on(false));
    expect(p.refusals).toEqual([]);
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-networks/netdev.txt");
    // Each OVS change has its inverse and sits in the network group (confirm or it reverts).
    const ovs = p.actions.filter((a) => a.id.startsWith("ovs."));
    expect(ovs.map((a) => [a.id, a.effect, a.kind === "run-command" ? a.undo?.slice(2) : null])).toEqual([
      ["ovs.bridge.ovsbr0", "network", ["--if-exists", "del-br", "ovsbr0"]],
      ["ovs.bridge.ovsbr0.uplink", "network", ["--if-exists", "del-port", "ovsbr0", "enp5s0"]],
    ]);
  });

  it("with the module: auto takes the kernel datapath", async () => {
    const p = plan("network:\n  ovs:\n    - { name: ovsbr0 }\n", on(true));
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-networks/system.txt");
  });

  it("a refused OVS bridge or libvirt network plans nothing for it; the rest still plans", async () => {
    const p = plan(
      `network:
  libvirt:
    - { name: natnet, mode: nat, bridge: virbr10, address: 192.168.100.1/24, dhcpRange: [10.0.0.2, 10.0.0.9] }
    - { name: backend, mode: isolated, bridge: virbr11, address: 10.20.0.1/24 }
  ovs:
    - { name: ovsbr0, datapath: system }
    - { name: ovsbr1, uplink: eno1 }
`,
      on(false),
    );
    await expect(renderPlanText(p)).toMatchFileSnapshot("./golden-networks/refused.txt");
    expect(p.actions.map((a) => a.id)).toEqual([
      "libvirt.network.backend.define",
      "libvirt.network.backend.start",
    ]);
  });
});
