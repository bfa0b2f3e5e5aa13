// Hardware: CPU/KVM, IOMMU, NICs, PCI, disks and every check, each with its reason and remediation.
// Tab (or left/right) switches the category; Enter drills into an item, Esc closes it.
import { Box } from "ink";
import { type ReactNode, useState } from "react";
import { CATEGORIES } from "../model.js";
import { levelColor, levelMark } from "../theme.js";
import type { ScreenProps } from "../types.js";
import { Detail, Line, ListView, move, useHold, useKeys } from "../ui.js";

export function Hardware({ model, theme, width, height, setHold }: ScreenProps): ReactNode {
  const [cat, setCat] = useState(0);
  const [sel, setSel] = useState<number[]>(() => CATEGORIES.map(() => 0));
  const [open, setOpen] = useState(false);
  const name = CATEGORIES[cat] ?? "Checks";
  const items = model.hardware[name];
  const at = Math.min(sel[cat] ?? 0, Math.max(0, items.length - 1));
  useHold(setHold, open ? "esc" : "none");
  useKeys((input, key) => {
    if (key.tab || key.rightArrow)
      setCat((c) => (c + (key.shift ? CATEGORIES.length - 1 : 1)) % CATEGORIES.length);
    else if (key.leftArrow) setCat((c) => (c + CATEGORIES.length - 1) % CATEGORIES.length);
    else if (key.return && items.length) setOpen(true);
    else setSel((s) => s.map((v, i) => (i === cat ? move(at, items.length, input, key, height - 3) : v)));
  }, !open);
  useKeys((_input, key) => {
    if (key.escape || key.return) setOpen(false);
  }, open);
  const tabs = CATEGORIES.map((c, i) => (i === cat ? `[${c}]` : ` ${c} `)).join("");
  const item = items[at];
  if (open && item) {
    return (
      <Detail
        title={`${name}: ${item.label}`}
        lines={item.detail}
        height={height}
        width={width}
        theme={theme}
      />
    );
  }
  return (
    <Box flexDirection="column">
      <Line text={tabs} width={width} theme={theme} bold />
      {items.length === 0 ? (
        <Line text="  nothing detected in this category" width={width} theme={theme} dim />
      ) : (
        <ListView
          rows={items.map((it) => ({
            text: `${it.level ? levelMark(theme, it.level) : " "} ${it.label}`,
            color: it.level ? levelColor[it.level] : undefined,
          }))}
          selected={at}
          height={height - 2}
          width={width}
          theme={theme}
        />
      )}
      <Line text="Enter shows the details (sources, remediation)" width={width} theme={theme} dim />
    </Box>
  );
}
