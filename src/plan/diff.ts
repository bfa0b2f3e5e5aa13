// The plan as people review it: a unified diff for every file, the exact command lines and sysfs
// writes, what each needs afterwards, and what was refused and why. The same text the TUI shows.
import { createTwoFilesPatch } from "diff";
import { type Action, argvForPeople, type Plan } from "./actions.js";

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
    case "write-file":
      return fileDiff(a.previous === null ? "/dev/null" : a.path, a.path, a.previous ?? "", a.content);
    case "remove-file":
      return [`remove ${a.path}`];
    case "write-sysfs":
      return [`echo ${a.value} > ${a.path}${a.previous !== null ? `   (now ${a.previous.trim()})` : ""}`];
    case "run-command":
      return [`$ ${argvForPeople(a).map(shellQuote).join(" ")}`];
    case "vm-overlay":
      return [
        `$ qemu-img create -f qcow2 -b ${shellQuote(a.image)} ${shellQuote(a.path)} ${a.sizeBytes}` +
          `${a.image.includes("/") ? "" : `   (image from ${a.cacheDir})`}`,
      ];
    case "vm-seed":
      return [
        `NoCloud seed ${a.path} (volume cidata) holding:`,
        ...fileDiff("/dev/null", "user-data", "", a.userData),
        ...fileDiff("/dev/null", "meta-data", "", a.metaData),
        ...fileDiff("/dev/null", "network-config", "", a.networkConfig),
      ];
    case "libvirt":
      if (a.op === "define-network")
        return [
          `virsh net-define (network ${a.name})${a.autostart ? ", net-autostart" : ""}`,
          ...fileDiff("/dev/null", `network ${a.name}`, "", a.xml),
        ];
      if (a.op === "start-network") return [`virsh net-start ${a.name}`];
      return a.op === "define-domain"
        ? [`virsh define (domain ${a.name})`, ...fileDiff("/dev/null", `domain ${a.name}`, "", a.xml)]
        : [`virsh start ${a.name}`];
  }
}

function fileDiff(from: string, to: string, before: string, after: string): string[] {
  return createTwoFilesPatch(from, to, before, after, "", "", { context: 3 })
    .split("\n")
    .slice(2)
    .filter((l, i, all) => !(i === all.length - 1 && l === ""));
}

const shellQuote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** A unified diff of a file from what the plan saw (`planned`) to what is there now (null: absent). */
export function renderDrift(path: string, planned: string | null, now: string | null): string {
  return createTwoFilesPatch(
    planned === null ? "/dev/null" : path,
    now === null ? "/dev/null" : path,
    planned ?? "",
    now ?? "",
    "when planned",
    "now",
    { context: 3 },
  )
    .split("\n")
    .slice(1)
    .join("\n")
    .trimEnd();
}
