// The plan as people review it: a unified diff for every file, the exact command lines and sysfs
// writes, what each needs afterwards, and what was refused and why. The same text the TUI shows.
import { createTwoFilesPatch } from "diff";
import type { Action, Plan } from "./actions.js";

const EFFECT_NOTE: Record<Action["effect"], string> = {
  none: "",
  "module-reload": " [module reload]",
  network: " [network: confirm or it reverts]",
  reboot: " [needs reboot]",
};

export function renderPlanText(plan: Plan): string {
  const out: string[] = [];
  if (plan.actions.length === 0) out.push("Nothing to change: the host already matches the answer file.");
  for (const [i, a] of plan.actions.entries()) {
    out.push(`${String(i + 1).padStart(3)}. ${a.summary}${EFFECT_NOTE[a.effect]}  (${a.id})`);
    out.push(...actionBody(a).map((l) => `     ${l}`));
  }
  if (plan.refusals.length) {
    out.push("", "Refused:");
    for (const r of plan.refusals) out.push(`  ${r.path}: ${r.reason}`);
  }
  if (plan.needsReboot)
    out.push("", "A reboot is needed; `kvmstrap apply --resume` runs after it and verifies the result.");
  return `${out.join("\n")}\n`;
}

function actionBody(a: Action): string[] {
  switch (a.kind) {
    case "write-file": {
      const patch = createTwoFilesPatch(
        a.previous === null ? "/dev/null" : a.path,
        a.path,
        a.previous ?? "",
        a.content,
        "",
        "",
        { context: 3 },
      );
      return patch
        .split("\n")
        .slice(2)
        .filter((l, i, all) => !(i === all.length - 1 && l === ""));
    }
    case "remove-file":
      return [`remove ${a.path}`];
    case "write-sysfs":
      return [`echo ${a.value} > ${a.path}${a.previous !== null ? `   (now ${a.previous.trim()})` : ""}`];
    case "run-command":
      return [`$ ${a.argv.map(shellQuote).join(" ")}`];
  }
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
