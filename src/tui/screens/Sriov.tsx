// SR-IOV: the physical functions and their VF counts. Whether a count may be set is the rule set's
// answer (a count above sriov_totalvfs, any change on the management NIC: a VF change resets its link).
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import { type Draft, pickedNic, sriovCounts } from "../draft.js";
import { type PfRow, sriovProblem } from "../model.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, Prompt, useHold, useKeys } from "../ui.js";

const keyOf = (p: PfRow) => p.nic.pciAddress ?? p.nic.name;

function setCount(d: Draft, pf: PfRow, n: number | null, report: ScreenProps["model"]["report"]): Draft {
  const rest = (d.sriov ?? []).filter((s) => pickedNic(s.pf, report) !== keyOf(pf));
  return { ...d, sriov: n === null ? rest : [...rest, { pf: pf.rule, numVfs: n }] };
}

export function Sriov({ model, draft, setDraft, theme, width, height, setHold }: ScreenProps): ReactNode {
  const [sel, setSel] = useState(0);
  const [editing, setEditing] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const counts = useMemo(() => sriovCounts(draft, model.report), [draft, model]);
  useHold(setHold, editing ? "all" : "none");
  const pf = model.pfs[sel];
  const apply = (n: number | null) => {
    if (!pf) return;
    if (n !== null && (n < 0 || !Number.isInteger(n)))
      return setMessage(`refused: a VF count is a whole number from 0, not ${n}`);
    const problem = sriovProblem(model.report, pf.rule, n ?? pf.numVfs);
    if (problem) return setMessage(`refused: ${problem}`);
    setMessage(null);
    setDraft((d) => setCount(d, pf, n, model.report));
  };
  useKeys((input, key) => {
    const now = pf ? (counts.get(keyOf(pf) ?? "") ?? pf.numVfs) : 0;
    if (!pf) return;
    if (key.return) return pf.management ? apply(0) : setEditing(true);
    if (key.rightArrow || input === "+" || input === "l") return apply(now + 1);
    if (key.leftArrow || input === "-" || input === "h") return apply(Math.max(0, now - 1));
    if (input === "x" || key.delete) return apply(null);
    setSel(move(sel, model.pfs.length, input, key));
  }, !editing);
  if (model.pfs.length === 0) {
    return (
      <Box flexDirection="column">
        <Line text="No SR-IOV capable NIC on this host (no sriov_totalvfs)." width={width} theme={theme} />
        <Line text="Press n to continue." width={width} theme={theme} dim />
      </Box>
    );
  }
  const rows = model.pfs.map((p) => {
    const want = counts.get(keyOf(p) ?? "");
    const plan = want === undefined ? "unchanged" : `-> ${want} VFs`;
    return {
      text: `${p.management ? theme.sym.mgmt : " "} ${p.label}  now ${p.numVfs}/${p.totalVfs ?? "?"}  ${plan}${p.management ? "  (management: locked)" : ""}`,
      color: p.management ? "yellow" : want !== undefined ? "cyan" : undefined,
    };
  });
  return (
    <Box flexDirection="column">
      <Line
        text="Physical functions (VFs now/total, and the count wanted):"
        width={width}
        theme={theme}
        bold
      />
      <ListView rows={rows} selected={sel} height={Math.max(2, height - 4)} width={width} theme={theme} />
      {editing && pf ? (
        <Prompt
          label={`VFs for ${pf.label} (0-${pf.totalVfs ?? "?"})`}
          initial={String(counts.get(keyOf(pf) ?? "") ?? pf.numVfs)}
          width={width}
          theme={theme}
          onSubmit={(v) => {
            setEditing(false);
            apply(v.trim() === "" ? null : Number(v.trim()));
          }}
          onCancel={() => setEditing(false)}
        />
      ) : (
        <Line
          text={message ?? "left/right or +/- change the count, Enter types it, x resets"}
          width={width}
          theme={theme}
          color={message ? "red" : undefined}
        />
      )}
    </Box>
  );
}
