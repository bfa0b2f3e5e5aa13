// The first-boot failure handler's summary (kvmstrap-firstboot-failed.service runs
// `kvmstrap verify --failed UNIT`): which unit failed, where the apply run stopped, what the last
// verification said, and where to look. It goes to every console and, as the lifecycle event
// "failed", to the answer's webhook, because a first-boot unit that fails silently is the failure
// operators complain about most (nobody is logged in to read the journal).
import { readFile } from "node:fs/promises";
import type { Answer } from "../answer/schema.js";
import { now } from "../apply/events.js";
import { Journal } from "../apply/journal.js";
import { stateDirOf } from "./adapters.js";
import { readAnswer } from "./prepare.js";
import { postLifecycle, verifyFileOf } from "./verify.js";
import { verifyLine, verifyResultSchema } from "./verify-result.js";

export const FIRSTBOOT_FAILED_PREFIX = "KVMSTRAP-FIRSTBOOT: FAILED";

export interface FailureReport {
  lines: string[];
  answer: Answer | null;
}

export async function firstBootFailure(o: {
  unit: string;
  root?: string;
  stateDir?: string;
  answerFile?: string | null;
  log?: (line: string) => void;
}): Promise<FailureReport> {
  const root = o.root ?? "/";
  // A failure handler that fails on a bad answer would say nothing at all: without the answer the
  // summary still goes to the consoles, with the reason the webhook was not told.
  let answer: Answer | null = null;
  let answerProblem: string | null = null;
  if (o.answerFile) {
    try {
      answer = (await readAnswer(o.answerFile)).answer;
    } catch (e) {
      answerProblem = `  the webhook was not told: ${(e as Error).message.split("\n")[0]}`;
    }
  }
  const latest = await new Journal(stateDirOf(root, o.stateDir)).latestRun().catch((e: Error) => e);
  const run =
    latest instanceof Error
      ? `the journal is unreadable: ${latest.message}`
      : latest
        ? `apply run ${latest.runId} is ${latest.phase}${latest.error ? `: ${latest.error}` : ""}`
        : "no apply run recorded";
  const text = await readFile(verifyFileOf(root, o.stateDir), "utf8").catch(() => null);
  let verified = "verify did not finish";
  if (text !== null) {
    try {
      verified = `last verify: ${verifyLine(verifyResultSchema.parse(JSON.parse(text)))}`;
    } catch {
      verified = "last verify: its result file is unreadable";
    }
  }
  const lines = [
    `${FIRSTBOOT_FAILED_PREFIX} (${o.unit}): ${run}; ${verified}`,
    `  see: journalctl -b -u ${o.unit}; ${stateDirOf(root, o.stateDir)}/log`,
    ...(answerProblem ? [answerProblem] : []),
  ];
  await postLifecycle(
    answer,
    { type: "node", phase: "failed", time: now(), detail: lines.join(" ").slice(0, 2000) },
    o.log,
  );
  return { lines, answer };
}
