// SR-IOV: VF counts and per-VF settings, persisted by a boot unit and applied live, and a libvirt
// hostdev network per PF so guests take VFs from a pool. The management NIC's VF count is never
// changed: resetting sriov_numvfs bounces the PF and the operator's session with it.
import { matchNics } from "../answer/match.js";
import { hostdevNetworkName, sriovOf } from "../answer/rules/index.js";
import type { PlanContext } from "./context.js";
import { isRefused, planBootUnit, planCommand, planFile, planSysfs } from "./context.js";
import { renderHostdevNetworkXml } from "./render/libvirt-xml.js";
import { renderSriovScript, renderSriovUnit } from "./render/sriov.js";

export const SRIOV_PATHS = {
  script: "/usr/local/lib/kvmstrap/sriov-setup",
  unit: "/etc/systemd/system/kvmstrap-sriov.service",
  networkXml: (name: string) => `/etc/kvmstrap/libvirt/network-${name}.xml`,
} as const;

export function planSriov(ctx: PlanContext): void {
  const pfs: Parameters<typeof renderSriovScript>[0] = [];
  for (const [i, entry] of ctx.answer.sriov.entries()) {
    // Whether this PF's VFs may change is the rule set's decision (src/answer/rules/sriov.ts).
    if (isRefused(ctx, `sriov[${i}]`)) continue;
    const nic = matchNics(entry.pf, ctx.report).chosen[0];
    if (!nic?.name || !nic.pciAddress) continue;
    const { info, visibleVfs } = sriovOf(ctx.report, nic);
    const pci = { address: nic.pciAddress, sriov: { numVfs: info?.numVfs ?? visibleVfs.length } };
    pfs.push({ pfName: nic.name, pciAddress: pci.address, numVfs: entry.numVfs, vfs: entry.vfs });
    planSysfs(ctx, {
      id: `sriov.numvfs.${nic.name}`,
      path: `/sys/bus/pci/devices/${pci.address}/sriov_numvfs`,
      value: String(entry.numVfs),
      previous: String(pci.sriov.numVfs),
      effect: "none",
      summary: `${nic.name}: ${pci.sriov.numVfs} -> ${entry.numVfs} VFs now`,
    });
    const netName = hostdevNetworkName(entry, nic.name);
    const xmlPath = SRIOV_PATHS.networkXml(netName);
    const changed = planFile(ctx, {
      id: `sriov.network.${netName}`,
      path: xmlPath,
      content: renderHostdevNetworkXml({ name: netName, pfName: nic.name }),
      effect: "none",
      summary: `libvirt hostdev network ${netName} over ${nic.name}'s VFs`,
    });
    if (changed) {
      planCommand(ctx, {
        id: `sriov.net-define.${netName}`,
        argv: ["virsh", "net-define", xmlPath],
        undo: ["virsh", "net-undefine", netName],
        effect: "none",
        summary: `define libvirt network ${netName}`,
      });
      planCommand(ctx, {
        id: `sriov.net-autostart.${netName}`,
        argv: ["virsh", "net-autostart", netName],
        undo: ["virsh", "net-autostart", "--disable", netName],
        effect: "none",
        summary: `autostart libvirt network ${netName}`,
      });
    }
  }
  if (pfs.length === 0) return;
  planBootUnit(ctx, {
    id: "sriov",
    effect: "none",
    script: {
      path: SRIOV_PATHS.script,
      content: renderSriovScript(pfs),
      summary: `create ${pfs.map((p) => `${p.numVfs} VFs on ${p.pfName}`).join(", ")} at every boot`,
    },
    unit: {
      path: SRIOV_PATHS.unit,
      content: renderSriovUnit(),
      summary: "systemd unit running the SR-IOV setup before networking and libvirtd",
    },
  });
}
