// SR-IOV: VF counts and per-VF settings, persisted by a boot unit and applied live, and a libvirt
// hostdev network per PF so guests take VFs from a pool. The management NIC's VF count is never
// changed: resetting sriov_numvfs bounces the PF and the operator's session with it.
import { matchNics } from "../answer/match.js";
import type { PlanContext } from "./context.js";
import { planBootUnit, planCommand, planFile, planSysfs, refuse } from "./context.js";
import { renderHostdevNetworkXml } from "./render/libvirt-xml.js";
import { renderSriovScript, renderSriovUnit } from "./render/sriov.js";

export const SRIOV_PATHS = {
  script: "/usr/local/lib/kvmstrap/sriov-setup",
  unit: "/etc/systemd/system/kvmstrap-sriov.service",
  networkXml: (name: string) => `/etc/kvmstrap/libvirt/network-${name}.xml`,
} as const;

/** The libvirt hostdev network for a PF's VFs: the entry's hostdevNetwork, else `${pfName}-vfs`. */
export function hostdevNetworkName(entry: { hostdevNetwork?: string | undefined }, pfName: string): string {
  return entry.hostdevNetwork ?? `${pfName}-vfs`;
}

export function planSriov(ctx: PlanContext): void {
  const pfs: Parameters<typeof renderSriovScript>[0] = [];
  for (const [i, entry] of ctx.answer.sriov.entries()) {
    const m = matchNics(entry.pf, ctx.report);
    const nic = m.chosen[0];
    if (m.error || !nic) {
      refuse(ctx, `sriov[${i}].pf`, m.error ?? "no NIC matched");
      continue;
    }
    if (nic.management) {
      refuse(ctx, `sriov[${i}].pf`, `${nic.name} is the management NIC: its VF count is not changed`);
      continue;
    }
    const pci = ctx.report.pci.find((d) => d.address === nic.pciAddress);
    if (!nic.name || !pci?.sriov) {
      refuse(ctx, `sriov[${i}].pf`, `${nic.name ?? nic.pciAddress} has no SR-IOV capability`);
      continue;
    }
    if (entry.numVfs > pci.sriov.totalVfs) {
      refuse(
        ctx,
        `sriov[${i}].numVfs`,
        `${nic.name} supports at most ${pci.sriov.totalVfs} VFs (asked ${entry.numVfs})`,
      );
      continue;
    }
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
