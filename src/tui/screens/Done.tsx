// Done: what changed (or would have), where the logs and the saved answer file are, what comes next.
import { Box } from "ink";
import type { ReactNode } from "react";
import type { ScreenProps } from "../types.js";
import { Line, ListView } from "../ui.js";

export function Done({ shared, session, theme, width, height }: ScreenProps): ReactNode {
  const o = shared.outcome;
  const head = o
    ? [
        `${o.dryRun ? "Dry run" : "Apply"} ${o.runId}: ${o.status}`,
        o.logFile ? `log: ${o.logFile}` : "log: none (a dry run changes and records nothing)",
        `answer file: ${shared.savedPath ?? "not saved (Esc back to Review, then s)"}`,
        ...(o.reboot
          ? ["A reboot is needed; kvmstrap apply --resume runs after it and verifies the result."]
          : []),
        ...(o.dryRun ? [`To apply: kvmstrap apply ${shared.savedPath ?? session.savePath}`] : []),
        "VMs: deploy the answer's vms: section with kvmstrap vm deploy --answer FILE --wait 600",
        "",
        `${o.dryRun ? "What would change" : "What changed"}:`,
      ]
    : ["Nothing was applied yet: Esc goes back to Apply."];
  const rows = (o?.lines ?? []).map((text) => ({
    text,
    color: text.startsWith("unchanged") ? undefined : "green",
  }));
  return (
    <Box flexDirection="column">
      {head.map((l, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`${i}`} text={l} width={width} theme={theme} bold={i === 0} />
      ))}
      {rows.length ? (
        <ListView
          rows={rows}
          selected={0}
          height={Math.max(1, height - head.length - 1)}
          width={width}
          theme={theme}
          focused={false}
        />
      ) : null}
      <Line text="q quits." width={width} theme={theme} dim />
    </Box>
  );
}
