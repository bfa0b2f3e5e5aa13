// Review: the plan as `kvmstrap plan` shows it (a diff per file, every command), the validation
// issues, and the answer file it corresponds to. `s` saves the answer file (atomically).
import { Box } from "ink";
import { type ReactNode, useEffect, useMemo, useState } from "react";
import { renderPlanText } from "../../plan/diff.js";
import { draftYaml, parseDraft, saveDraft } from "../draft.js";
import { review } from "../session.js";
import { wrap } from "../theme.js";
import type { ScreenProps } from "../types.js";
import { Line, move, Prompt, useHold, useKeys } from "../ui.js";

export function Review(props: ScreenProps): ReactNode {
  const { model, session, draft, theme, width, height, setHold, shared, setShared } = props;
  const [view, setView] = useState<"plan" | "yaml">("plan");
  const [top, setTop] = useState(0);
  const [saving, setSaving] = useState(false);
  const [message, setMessage] = useState<string | null>(null);
  const [failure, setFailure] = useState<string[] | null>(null);
  useHold(setHold, saving ? "all" : "none");
  useEffect(() => {
    const parsed = parseDraft(draft);
    if (!parsed.ok) {
      setFailure(parsed.issues);
      setShared((s) => ({ ...s, review: null }));
      return;
    }
    let live = true;
    setFailure(null);
    review(session, model.report, parsed.answer).then(
      (r) => live && setShared((s) => ({ ...s, review: r })),
      (e: Error) => live && setFailure([`planning failed: ${e.message}`]),
    );
    return () => {
      live = false;
    };
  }, [draft, model, session, setShared]);
  const r = shared.review;
  const lines = useMemo(() => {
    if (view === "yaml") return draftYaml(draft).trimEnd().split("\n");
    if (failure) return ["The answer is not valid yet:", ...failure.flatMap((f) => wrap(`  ${f}`, width, 4))];
    if (!r) return ["Planning..."];
    const issues = [
      ...r.errors.flatMap((e) => wrap(`ERROR ${e}`, width, 6)),
      ...r.warnings.flatMap((w) => wrap(`warning ${w}`, width, 8)),
      ...(r.errors.length || r.warnings.length ? [""] : []),
    ];
    return [...issues, ...renderPlanText(r.plan).trimEnd().split("\n")];
  }, [view, draft, failure, r, width]);
  const room = Math.max(1, height - 3);
  useKeys((input, key) => {
    if (key.tab) {
      setTop(0);
      return setView((v) => (v === "plan" ? "yaml" : "plan"));
    }
    if (input === "s") return setSaving(true);
    setTop((t) => Math.min(Math.max(0, lines.length - room), move(t, lines.length, input, key, room)));
  }, !saving);
  const status = failure
    ? "not valid: fix it on the screens before (Esc goes back)"
    : r
      ? `${r.plan.actions.length} actions, ${r.plan.refusals.length} refused, ${r.errors.length} errors${r.plan.needsReboot ? ", needs a reboot" : ""}`
      : "planning...";
  return (
    <Box flexDirection="column">
      <Line
        text={`[${view === "plan" ? "Plan" : "Answer file"}] (Tab switches)  ${status}`}
        width={width}
        theme={theme}
        bold
        color={failure || r?.errors.length || r?.plan.refusals.length ? "yellow" : undefined}
      />
      {lines.slice(top, top + room).map((l, i) => (
        <Line
          // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
          key={`${top + i}`}
          text={l}
          width={width}
          theme={theme}
          color={
            l.startsWith("+")
              ? "green"
              : l.startsWith("-")
                ? "red"
                : l.startsWith("ERROR")
                  ? "red"
                  : undefined
          }
        />
      ))}
      {Array.from({ length: Math.max(0, room - lines.length + top) }, (_, i) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: rows are positions on the screen
        <Line key={`pad${i}`} text="" width={width} theme={theme} />
      ))}
      {saving ? (
        <Prompt
          label="save answer file to"
          initial={shared.savedPath ?? session.savePath}
          width={width}
          theme={theme}
          onSubmit={(file) => {
            setSaving(false);
            saveDraft(file.trim() || session.savePath, draft).then(
              (p) => {
                setShared((s) => ({ ...s, savedPath: p }));
                setMessage(`saved ${p}`);
              },
              (e: Error) => setMessage(`not saved: ${e.message}`),
            );
          }}
          onCancel={() => setSaving(false)}
        />
      ) : (
        <Line
          text={
            message ??
            `lines ${top + 1}-${Math.min(lines.length, top + room)} of ${lines.length}; s saves the answer file; n goes to Apply`
          }
          width={width}
          theme={theme}
          color={message?.startsWith("not") ? "red" : message ? "green" : undefined}
        />
      )}
    </Box>
  );
}
