// Welcome: who this host is and whether it is ready for KVM (the checks' verdict).
import { Box } from "ink";
import { type ReactNode, useMemo } from "react";
import { formatSize } from "../../answer/match.js";
import { levelColor, levelMark } from "../theme.js";
import type { ScreenProps } from "../types.js";
import { Line, useKeys } from "../ui.js";

const VERDICT: Record<string, { text: string; color: string }> = {
  ready: { text: "READY for KVM", color: "green" },
  "ready-with-warnings": { text: "READY, with warnings", color: "yellow" },
  "not-ready": { text: "NOT READY", color: "red" },
};

export function Welcome({ model, session, theme, width, height, next }: ScreenProps): ReactNode {
  const r = model.report;
  const facts = useMemo(() => {
    const mem = r.memory.totalKiB !== null ? formatSize(r.memory.totalKiB * 1024) : "?";
    const phys = r.nics.filter((n) => !n.virtual).length;
    const where = session.demo
      ? `captured machine (demo), read from ${session.root}`
      : r.live
        ? `this machine${session.isRoot ? "" : " (not root: apply is a dry run)"}`
        : `machine root ${session.root}`;
    return [
      `host     ${r.hostname ?? "unknown"}   kernel ${r.kernel ?? "?"}`,
      `source   ${where}`,
      `cpu      ${r.cpu.model ?? "unknown"} (${r.cpu.threads ?? "?"} threads, ${r.cpu.virt ?? "no virt"})`,
      `memory   ${mem}; firmware ${r.firmware.mode}; bootloader ${r.system.bootloader}`,
      `devices  ${phys} NICs, ${r.disks.filter((d) => !d.virtual).length} disks, ${r.pci.length} PCI, ${r.iommu.groups.length} IOMMU groups`,
      ...(session.answerFile ? [`answer   pre-filled from ${session.answerFile}`] : []),
    ];
  }, [r, session]);
  const counts = useMemo(() => {
    const c = { pass: 0, warn: 0, fail: 0, note: 0 };
    for (const x of model.checks) c[x.level]++;
    return c;
  }, [model]);
  const notable = model.checks.filter((c) => c.level === "fail" || c.level === "warn");
  const v = VERDICT[model.verdict] ?? { text: model.verdict, color: "white" };
  const room = Math.max(0, height - facts.length - 4);
  useKeys((_input, key) => {
    if (key.return) next();
  });
  return (
    <Box flexDirection="column">
      {facts.map((f) => (
        <Line key={f} text={f} width={width} theme={theme} />
      ))}
      <Line text="" width={width} theme={theme} />
      <Line
        text={`Verdict: ${v.text}  (${counts.pass} pass, ${counts.warn} warn, ${counts.fail} fail, ${counts.note} notes)`}
        width={width}
        theme={theme}
        color={v.color}
        bold
      />
      {notable.slice(0, room).map((c) => (
        <Line
          key={c.id + c.reason}
          text={`${levelMark(theme, c.level)} ${c.id}: ${c.reason}`}
          width={width}
          theme={theme}
          color={levelColor[c.level]}
        />
      ))}
      {notable.length > room ? (
        <Line
          text={`  ${notable.length - room} more on the Hardware screen`}
          width={width}
          theme={theme}
          dim
        />
      ) : null}
      <Line text="Press Enter (or n) to inspect the hardware." width={width} theme={theme} dim />
    </Box>
  );
}
