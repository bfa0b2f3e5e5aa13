// Passthrough: PCI devices grouped by IOMMU group, with viability. A group passes through whole or
// not at all, so Enter picks every endpoint of the group; a pick the rule set refuses (the only GPU,
// the management NIC, a boot disk's controller, a bridge, a group with such a device) is refused here
// with the rule's own words, and its warnings (the boot VGA) are shown as the pick is made.
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import { passthroughPicked } from "../draft.js";
import type { DevRow, GroupRow } from "../model.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, useKeys } from "../ui.js";

type Entry = { group: GroupRow; dev: DevRow | null };

const endpoints = (g: GroupRow, d: DevRow | null) =>
  g.id === null ? (d ? [d] : []) : g.devices.filter((x) => !x.bridge);

export function Passthrough({ model, draft, setDraft, theme, width, height }: ScreenProps): ReactNode {
  const [sel, setSel] = useState(0);
  const [message, setMessage] = useState<string | null>(null);
  const picked = useMemo(() => passthroughPicked(draft, model.report), [draft, model]);
  const entries: Entry[] = useMemo(
    () =>
      model.groups.flatMap((g) => [{ group: g, dev: null }, ...g.devices.map((d) => ({ group: g, dev: d }))]),
    [model],
  );
  const groupsOn = model.report.iommu.groupsPopulated;
  const iommuOn = draft.iommu?.enabled === true;
  const toggle = (e: Entry) => {
    const eps = endpoints(e.group, e.dev);
    const stop = e.group.id === null ? (e.dev?.obstacle ?? null) : e.group.blocker;
    if (stop)
      return setMessage(
        `refused: ${stop}${e.group.id !== null ? ` (group ${e.group.id} goes whole or not at all)` : ""}`,
      );
    if (e.dev?.bridge) return setMessage(`refused: ${e.dev.obstacle ?? "a PCI bridge stays with the host"}`);
    if (eps.length === 0) return setMessage("pick a device line in this list");
    const all = eps.every((d) => picked.has(d.dev.address));
    const next = new Set(picked);
    for (const d of eps) all ? next.delete(d.dev.address) : next.add(d.dev.address);
    const warning = eps.find((d) => d.warning)?.warning;
    setMessage(
      all
        ? null
        : `picked ${eps.map((d) => d.dev.address).join(", ")}${groupsOn ? "" : "; the IOMMU is enabled in the answer"}${warning ? `; warning: ${warning}` : ""}`,
    );
    setDraft((d) => ({
      ...d,
      iommu: next.size && !groupsOn ? { ...d.iommu, enabled: true } : d.iommu,
      passthrough: [...next].sort().map((address) => ({ device: { address } })),
    }));
  };
  useKeys((input, key) => {
    const e = entries[sel];
    if ((key.return || input === " ") && e) return toggle(e);
    if (input === "i") return setDraft((d) => ({ ...d, iommu: { ...d.iommu, enabled: !iommuOn } }));
    setSel(move(sel, entries.length, input, key, height - 4));
  });
  const rows = entries.map(({ group: g, dev }) => {
    if (!dev) {
      const head =
        g.id === null
          ? groupsOn
            ? "outside any IOMMU group"
            : "no IOMMU groups (IOMMU off)"
          : `IOMMU group ${g.id}`;
      return {
        text: `${head}: ${g.blocker ? `not assignable: ${g.blocker}` : `${g.devices.length} device(s)`}`,
        color: g.blocker ? "yellow" : "cyan",
      };
    }
    const mark = picked.has(dev.dev.address) ? theme.sym.on : dev.bridge ? "   " : theme.sym.off;
    const why = dev.obstacle && !dev.bridge ? `  (${dev.obstacle.replace(`${dev.dev.address} `, "")})` : "";
    const note = !why && dev.warning ? `  (warning: ${dev.warning.replace(`${dev.dev.address} `, "")})` : "";
    return {
      text: `  ${mark} ${dev.label}${why}${note}`,
      color: why ? "red" : note ? "yellow" : undefined,
    };
  });
  return (
    <Box flexDirection="column">
      <Line
        text={`IOMMU groups on this host: ${model.report.iommu.groups.length}; answer: iommu.enabled ${iommuOn ? "true" : "unset"} (i toggles)`}
        width={width}
        theme={theme}
        bold
      />
      <ListView rows={rows} selected={sel} height={Math.max(2, height - 3)} width={width} theme={theme} />
      <Line
        text={message ?? `Enter picks a whole group; ${picked.size} device(s) picked`}
        width={width}
        theme={theme}
        color={message?.startsWith("refused") ? "red" : undefined}
      />
    </Box>
  );
}
