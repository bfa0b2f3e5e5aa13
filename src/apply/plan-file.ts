// A plan read from JSON (`kvmstrap apply --plan PLAN.json`) is checked before anything is applied:
// every action must be one the engine knows, with fields of the right types.
import { InputError } from "../core/errors.js";
import type { Action, Plan } from "../plan/actions.js";

const EFFECTS = new Set(["none", "module-reload", "network", "reboot"]);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const isStrOrNull = (v: unknown) => v === null || isStr(v);
const isArgv = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every(isStr);
const isArgvOrNull = (v: unknown) => v === null || isArgv(v);

function actionProblem(a: unknown): string | null {
  if (!isObj(a)) return "not an object";
  if (!isStr(a.id) || !a.id) return "id must be a non-empty string";
  if (!isStr(a.summary)) return "summary must be a string";
  if (!isStr(a.effect) || !EFFECTS.has(a.effect)) return `effect must be one of ${[...EFFECTS].join(", ")}`;
  if (a.remediation !== undefined && !isStr(a.remediation)) return "remediation must be a string";
  const absolute = isStr(a.path) && a.path.startsWith("/");
  switch (a.kind) {
    case "write-file":
      if (!absolute) return "path must be absolute";
      if (!isStr(a.content)) return "content must be a string";
      if (typeof a.mode !== "number" || !Number.isInteger(a.mode) || a.mode < 0 || a.mode > 0o7777) {
        return "mode must be a permission number (e.g. 420 for 0644)";
      }
      return isStrOrNull(a.previous) ? null : "previous must be a string or null";
    case "remove-file":
      if (!absolute) return "path must be absolute";
      return isStrOrNull(a.previous) ? null : "previous must be a string or null";
    case "write-sysfs":
      if (!absolute) return "path must be absolute";
      if (!isStr(a.value)) return "value must be a string";
      return isStrOrNull(a.previous) ? null : "previous must be a string or null";
    case "run-command":
      if (!isArgv(a.argv)) return "argv must be a non-empty list of strings";
      if (!isArgvOrNull(a.undo)) return "undo must be a list of strings or null";
      return isArgvOrNull(a.check) ? null : "check must be a list of strings or null";
    default:
      return `unknown kind ${JSON.stringify(a.kind)}`;
  }
}

/** Checks parsed JSON is a kvmstrap plan; throws InputError naming the first problem. */
export function validatePlan(data: unknown, file: string): Plan {
  if (!isObj(data) || data.schema !== "kvmstrap.plan/1") {
    throw new InputError(`${file}: not a kvmstrap plan (expected "schema": "kvmstrap.plan/1")`);
  }
  if (!Array.isArray(data.actions)) throw new InputError(`${file}: "actions" must be a list`);
  const ids = new Set<string>();
  data.actions.forEach((a: unknown, i: number) => {
    const problem = actionProblem(a);
    if (problem) throw new InputError(`${file}: actions[${i}]: ${problem}`);
    const id = (a as Action).id;
    if (ids.has(id)) throw new InputError(`${file}: actions[${i}]: duplicate id "${id}"`);
    ids.add(id);
  });
  const refusals = Array.isArray(data.refusals) ? data.refusals : [];
  return {
    schema: "kvmstrap.plan/1",
    answerDigest: isStr(data.answerDigest) ? data.answerDigest : "",
    actions: data.actions as Action[],
    refusals: refusals as Plan["refusals"],
    needsReboot: (data.actions as Action[]).some((a) => a.effect === "reboot"),
  };
}
