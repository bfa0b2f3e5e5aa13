// The Apply screen's state, folded from the event stream (a pure reducer, tested on its own).
import type { ApplyEvent } from "../../apply/events.js";
import { type Theme, wrap } from "../theme.js";

export interface StepView {
  id: string;
  summary: string;
  state: "running" | "done" | "skipped" | "failed";
  detail?: string;
  durationMs?: number;
  error?: string;
  remediation?: string;
}

export interface Progress {
  phase: "idle" | "running" | "finished";
  dryRun: boolean;
  steps: StepView[];
  confirm: { deadline: string; ids: string[] } | null;
  reboot: string[] | null;
  reverted: string | null;
  status: string | null;
  error: string | null;
  remediation: string | null;
}

export const start: Progress = {
  phase: "idle",
  dryRun: true,
  steps: [],
  confirm: null,
  reboot: null,
  reverted: null,
  status: null,
  error: null,
  remediation: null,
};

export function reduce(p: Progress, e: ApplyEvent): Progress {
  switch (e.type) {
    case "run":
      return e.phase === "FAILED"
        ? { ...p, error: e.error ?? "failed", remediation: e.remediation ?? null }
        : p;
    case "step": {
      if (e.phase === "progress") return p;
      const state = e.phase === "started" ? "running" : e.phase === "finished" ? "done" : e.phase;
      const view: StepView = {
        id: e.id,
        summary: e.summary,
        state,
        detail: e.detail,
        durationMs: e.durationMs,
        error: e.error,
        remediation: e.remediation,
      };
      const i = p.steps.findIndex((s) => s.id === e.id);
      const steps = i < 0 ? [...p.steps, view] : p.steps.map((s, j) => (j === i ? view : s));
      return { ...p, steps };
    }
    case "confirm-required":
      return { ...p, confirm: { deadline: e.deadline, ids: e.ids } };
    case "reverted":
      return { ...p, confirm: null, reverted: `${e.ids.join(", ")}: ${e.reason}` };
    case "reboot-required":
      return { ...p, reboot: e.ids };
  }
}

export function progressLines(p: Progress, theme: Theme): { text: string; color?: string }[] {
  const s = theme.sym;
  const out: { text: string; color?: string }[] = [];
  for (const st of p.steps) {
    const mark = { running: s.pointer, done: s.pass, skipped: p.dryRun ? s.note : s.pass, failed: s.fail }[
      st.state
    ];
    const took = st.durationMs !== undefined ? ` (${st.durationMs} ms)` : "";
    const color = st.state === "failed" ? "red" : st.state === "done" ? "green" : undefined;
    out.push({ text: `${mark} ${st.id}: ${st.detail ?? st.summary}${took}`, color });
    if (st.error) out.push({ text: `    error: ${st.error}`, color: "red" });
    if (st.remediation)
      for (const l of wrap(`fix: ${st.remediation}`, 74)) out.push({ text: `    ${l}`, color: "yellow" });
  }
  if (p.error && !p.steps.some((x) => x.error === p.error))
    out.push({ text: `FAILED: ${p.error}`, color: "red" });
  if (p.remediation) out.push({ text: `fix: ${p.remediation}`, color: "yellow" });
  if (p.reverted) out.push({ text: `reverted ${p.reverted}`, color: "yellow" });
  if (p.reboot)
    out.push({
      text: `REBOOT NEEDED for ${p.reboot.join(", ")}; kvmstrap apply --resume runs after it`,
      color: "yellow",
    });
  return out;
}
