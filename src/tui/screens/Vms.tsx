// VMs: reserved. The answer file keeps a `vms` section for VM deployment (template, image, size,
// NICs, ssh keys); this version of the engine does not plan it yet, so the screen only shows it.
import { Box } from "ink";
import type { ReactNode } from "react";
import type { ScreenProps } from "../types.js";
import { Line } from "../ui.js";

export function Vms({ draft, theme, width }: ScreenProps): ReactNode {
  const vms = draft.vms ?? [];
  const lines = [
    "VM deployment (template, image, size, NICs, ssh keys) is reserved: the engine does not plan it yet.",
    "",
    vms.length
      ? `The answer file carries ${vms.length} VM entr${vms.length === 1 ? "y" : "ies"}; they are kept as they are:`
      : "No VMs in the answer (vms: []).",
    ...vms
      .slice(0, 10)
      .map((v, i) => `  ${i + 1}. ${typeof v.name === "string" ? v.name : JSON.stringify(v).slice(0, 60)}`),
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
