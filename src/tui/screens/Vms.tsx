// VMs: the answer file's `vms:` entries, as `kvmstrap vm deploy --answer FILE` will deploy them after
// the host is applied. Read-only here for now: entries come from --answer; editing them is not yet
// part of the wizard.
import { Box } from "ink";
import type { ReactNode } from "react";
import type { ScreenProps } from "../types.js";
import { Line } from "../ui.js";

export function Vms({ draft, theme, width }: ScreenProps): ReactNode {
  const vms = draft.vms ?? [];
  const nic = (n: Record<string, unknown>) =>
    "network" in n ? `net ${n.network}` : "bridge" in n ? `br ${n.bridge}` : "sriov" in n ? "VF" : "macvtap";
  const lines = [
    vms.length
      ? `${vms.length} VM${vms.length === 1 ? "" : "s"} in the answer file (deployed after apply with kvmstrap vm deploy --answer):`
      : "No VMs in the answer file. Start with --answer FILE to bring a vms: section (see templates/answer.example.yaml).",
    "",
    ...vms.slice(0, 12).map((v) => {
      const e = v as Record<string, unknown>;
      const nics = Array.isArray(e.nics)
        ? (e.nics as Record<string, unknown>[]).map(nic).join(", ")
        : "net default";
      return `  ${String(e.name)}: ${String(e.image)}, ${String(e.vcpus)} vCPU, ${String(e.memoryMiB)} MiB, ${String(e.diskGiB)} GiB; ${nics}`;
    }),
    "",
    "Press n to review the plan.",
  ];
  return (
    <Box flexDirection="column">
      {lines.map((l, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`${i}`} text={l} width={width} theme={theme} />
      ))}
    </Box>
  );
}
