// Install: the hypervisor onto a disk of this machine, from the appliance. The candidates and what
// is wrong with each come from the one rule set (app/install: the boot medium and non-disks are
// excluded, disks holding data need an explicit wipe, USB and removable disks come last). Choosing a
// disk asks for its serial, typed; I then runs `kvmstrap install` on it (the same app function), with
// each step shown as the engine reports it. Fits 80x24 over a serial line, keyboard only.
import { Box } from "ink";
import { type ReactNode, useMemo, useState } from "react";
import {
  type DiskRow,
  diskRuleFor,
  installCandidates,
  prepareInstall,
  runInstall,
} from "../../app/install.js";
import { type ApplyEvent, EventBus } from "../../apply/events.js";
import { type Draft, saveDraft } from "../draft.js";
import { dryRunOnly } from "../session.js";
import type { ScreenProps } from "../types.js";
import { Line, ListView, move, Prompt, useHold, useKeys } from "../ui.js";
import { type Progress, progressLines, reduce, start } from "./apply-progress.js";

/** Where the TUI keeps the answer it installs from (0600: it may carry password hashes). */
const TUI_ANSWER = "/run/kvmstrap/install/tui-answer.yaml";

const stateOf = (r: DiskRow, wipe: boolean): string =>
  r.excluded
    ? `no: ${r.excluded}`
    : r.holdsData
      ? wipe
        ? `ERASE: ${r.holdsData}`
        : `holds data (${r.holdsData}): w to erase it`
      : r.removable
        ? "usable (USB/removable)"
        : "usable";

const withInstall = (d: Draft, r: DiskRow, wipe: boolean): Draft => ({
  ...d,
  install: { ...(d.install ?? {}), disk: diskRuleFor(r.disk) ?? {}, wipe },
});

export function Install({
  model,
  session,
  draft,
  setDraft,
  theme,
  width,
  height,
  setHold,
}: ScreenProps): ReactNode {
  const rows = useMemo(() => installCandidates(model.report), [model]);
  const [sel, setSel] = useState(0);
  const [wipe, setWipe] = useState<Set<string>>(new Set());
  const [asking, setAsking] = useState<DiskRow | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [p, setP] = useState<Progress>(start);
  const running = p.phase === "running";
  useHold(setHold, asking || running ? "all" : "none");
  const chosen = draft.install?.disk;
  const isChosen = (r: DiskRow) => JSON.stringify(diskRuleFor(r.disk)) === JSON.stringify(chosen);

  const pick = (r: DiskRow) => {
    if (r.excluded) return setMessage(`refused: ${r.disk.name}: ${r.excluded}`);
    if (r.holdsData && !wipe.has(r.disk.name))
      return setMessage(`refused: ${r.disk.name} holds data; press w to erase it anyway, then Enter`);
    setMessage(null);
    setAsking(r);
  };
  const confirm = (typed: string) => {
    const r = asking;
    setAsking(null);
    if (!r) return;
    const want = r.disk.serial ?? r.disk.byId[0]?.replace(/^\/dev\/disk\/by-id\//, "") ?? "";
    if (typed.trim() !== want) return setMessage(`${r.disk.name}: that is not its serial; nothing chosen`);
    setDraft((d) => withInstall(d, r, wipe.has(r.disk.name)));
    setMessage(`${r.disk.name} chosen: I installs now; the answer's install: section names it`);
  };
  const install = async () => {
    const r = rows.find(isChosen);
    if (!r) return setMessage("choose a disk first (Enter, then type its serial)");
    const only = dryRunOnly(session);
    setMessage(null);
    try {
      const file = await saveDraft(TUI_ANSWER, draft);
      const prepared = await prepareInstall(file, { root: session.root });
      const bus = new EventBus();
      bus.subscribe((e: ApplyEvent) => setP((s) => reduce(s, e)));
      setP({ ...start, phase: "running", dryRun: Boolean(only) });
      const res = await runInstall(prepared, {
        bus,
        dryRun: Boolean(only),
        onProgress: (line) => setMessage(line.trim()),
      });
      setP((s) => ({ ...s, phase: "finished", status: res.status, error: res.error ?? s.error }));
      setMessage(
        res.status === "succeeded"
          ? `installed onto ${r.disk.name}: remove the boot medium and reboot`
          : res.status === "dry-run"
            ? `dry run only (${only}): nothing was written`
            : `install ${res.status}: ${res.error ?? "see the steps above"}`,
      );
    } catch (e) {
      setP((s) => ({ ...s, phase: "finished" }));
      setMessage(`refused: ${(e as Error).message.split("\n").slice(0, 3).join(" ")}`);
    }
  };
  useKeys((input, key) => {
    if (input === "w") {
      const r = rows[sel];
      if (!r?.holdsData || r.excluded) return setMessage("w erases a disk holding data: pick one first");
      const next = new Set(wipe);
      if (next.has(r.disk.name)) next.delete(r.disk.name);
      else next.add(r.disk.name);
      return setWipe(next);
    }
    if (input === "I") return void install();
    const r = rows[sel];
    if ((key.return || input === " ") && r) return pick(r);
    setSel(move(sel, rows.length, input, key));
  }, !asking && !running);

  const list = rows.map((r) => ({
    text: `${isChosen(r) ? theme.sym.on : theme.sym.off} ${r.label}: ${stateOf(r, wipe.has(r.disk.name))}`,
    color: r.excluded ? "yellow" : r.holdsData && !wipe.has(r.disk.name) ? "yellow" : undefined,
  }));
  const steps = progressLines(p, theme);
  const listHeight = p.phase === "idle" ? Math.max(3, height - 3) : Math.max(3, Math.floor((height - 3) / 3));
  return (
    <Box flexDirection="column">
      <Line text="Install onto (Enter chooses, w erase data, I install):" width={width} theme={theme} bold />
      <ListView
        rows={list}
        selected={sel}
        height={listHeight}
        width={width}
        theme={theme}
        focused={!running}
      />
      {p.phase !== "idle" ? (
        <ListView
          rows={steps}
          selected={Math.max(0, steps.length - 1)}
          height={Math.max(2, height - listHeight - 3)}
          width={width}
          theme={theme}
          focused={false}
        />
      ) : null}
      {asking ? (
        <Prompt
          label={`ERASE ${asking.disk.name}? type its ${asking.disk.serial ? "serial" : "by-id name"}`}
          initial=""
          width={width}
          theme={theme}
          onSubmit={confirm}
          onCancel={() => {
            setAsking(null);
            setMessage("cancelled: nothing chosen");
          }}
        />
      ) : (
        <Line
          text={
            message ?? (running ? "installing..." : "USB and removable disks are listed after the others")
          }
          width={width}
          theme={theme}
          color={message?.startsWith("refused") ? "red" : undefined}
        />
      )}
    </Box>
  );
}
