// Apply: live progress from the engine's event stream: each step with its duration, errors with
// their remediation, the network confirm-or-revert countdown and the reboot notice. A dry run
// unless running as root on a live machine AND the operator typed "yes".
import path from "node:path";
import { Box } from "ink";
import { type ReactNode, useEffect, useRef, useState } from "react";
import type { ApplyEvent } from "../../apply/events.js";
import { dryRunOnly, startApply } from "../session.js";
import type { ScreenProps } from "../types.js";
import { Line, Prompt, useHold, useKeys } from "../ui.js";
import { type Progress, progressLines, reduce, start } from "./apply-progress.js";

export function Apply(props: ScreenProps): ReactNode {
  const { session, theme, width, height, setHold, shared, setShared, next } = props;
  const r = shared.review;
  const [p, setP] = useState<Progress>(start);
  const [asking, setAsking] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [nowMs, setNowMs] = useState(Date.now());
  const decide = useRef<((keep: boolean) => void) | null>(null);
  const running = p.phase === "running";
  useHold(setHold, running || asking ? "all" : "none");
  useEffect(() => {
    if (!p.confirm) return;
    const t = setInterval(() => setNowMs(Date.now()), 1000);
    return () => clearInterval(t);
  }, [p.confirm]);
  const blocked = !r
    ? "nothing planned yet: go back to Review"
    : r.errors.length
      ? `the answer has ${r.errors.length} problem(s) (validation errors, plan refusals): only a dry run`
      : null;
  const run = (dryRun: boolean) => {
    if (!r) return;
    setMessage(null);
    const waitForConfirm = () => new Promise<boolean>((res) => (decide.current = res));
    const { bus, done } = startApply(session, r, { dryRun, waitForConfirm });
    bus.subscribe((e: ApplyEvent) => setP((s) => reduce(s, e)));
    setP({ ...start, phase: "running", dryRun });
    done.then(
      (res) => {
        setP((s) => ({
          ...s,
          phase: "finished",
          status: res.status,
          error: res.error ?? s.error,
          confirm: null,
        }));
        setShared((s) => ({
          ...s,
          outcome: {
            status: res.status,
            dryRun,
            runId: res.runId,
            lines: res.operations.map(
              (o) =>
                `${o.state === "unchanged" ? "unchanged" : dryRun ? "would change" : "changed"}: ${o.id}`,
            ),
            logFile: dryRun ? null : path.join(session.stateDir, "log", "apply-events.jsonl"),
            reboot:
              res.status === "awaiting-reboot" || (res.rebootIds?.length ?? 0) > 0 || r.plan.needsReboot,
          },
        }));
      },
      (e: Error) => setP((s) => ({ ...s, phase: "finished", status: "failed", error: e.message })),
    );
  };
  useKeys((input, key) => {
    if (p.confirm && decide.current) {
      if (input === "y") decide.current(true);
      if (input === "r") decide.current(false);
      return;
    }
    if (running) return;
    if (p.phase === "finished" && key.return) return next();
    if (key.return || input === "d") return r ? run(true) : setMessage(blocked);
    if (input === "A") {
      const why = blocked ?? (dryRunOnly(session) ? `only a dry run: ${dryRunOnly(session)}` : null);
      return why ? setMessage(why) : setAsking(true);
    }
  }, !asking);
  const secs = p.confirm ? Math.max(0, Math.round((Date.parse(p.confirm.deadline) - nowMs) / 1000)) : 0;
  const head =
    p.phase === "idle"
      ? `${r ? `${r.plan.actions.length} actions planned.` : "Nothing planned."} Enter: dry run; A: apply for real${dryRunOnly(session) ? ` (unavailable: ${dryRunOnly(session)})` : " (asks for yes)"}`
      : `${p.dryRun ? "Dry run" : "Apply"} ${p.phase === "running" ? "running..." : `finished: ${p.status}`}`;
  const body = progressLines(p, theme);
  const room = Math.max(1, height - 3);
  return (
    <Box flexDirection="column">
      <Line
        text={head}
        width={width}
        theme={theme}
        bold
        color={p.status === "failed" || p.status === "reverted" ? "red" : undefined}
      />
      {body.slice(-room).map((l, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`${i}`} text={l.text} width={width} theme={theme} color={l.color} />
      ))}
      {p.confirm ? (
        <Line
          text={`NETWORK CHANGED: y keeps it, r reverts now; reverts by itself in ${secs} s`}
          width={width}
          theme={theme}
          color="yellow"
          bold
        />
      ) : asking ? (
        <Prompt
          label={`type yes to apply ${r?.plan.actions.length ?? 0} actions to ${session.root}`}
          initial=""
          width={width}
          theme={theme}
          onSubmit={(v) => {
            setAsking(false);
            if (v.trim().toLowerCase() === "yes") run(false);
            else setMessage("not confirmed: nothing changed");
          }}
          onCancel={() => setAsking(false)}
        />
      ) : (
        <Line
          text={message ?? (p.phase === "finished" ? "Enter or n: summary" : (blocked ?? ""))}
          width={width}
          theme={theme}
          color={message ? "yellow" : undefined}
        />
      )}
    </Box>
  );
}
