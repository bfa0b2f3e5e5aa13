// A plan read from JSON (`kvmstrap apply --plan PLAN.json`) is parsed with the plan's own schema
// before anything is applied: every action must be one the engine knows, with fields of the right
// types, and everything the plan carries (its `expect` for the post-reboot verification included)
// is kept.
import { InputError } from "../core/errors.js";
import { PLAN_SCHEMA_ID, type Plan, planSchema } from "../plan/actions.js";
import { parseWire } from "./wire.js";

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Checks parsed JSON is a kvmstrap plan; throws InputError naming the file and the first problem. */
export function validatePlan(data: unknown, file: string): Plan {
  if (!isObj(data) || data.schema !== PLAN_SCHEMA_ID) {
    throw new InputError(`${file}: not a kvmstrap plan (expected "schema": "${PLAN_SCHEMA_ID}")`);
  }
  // needsReboot follows from the actions; a hand-written plan may leave it out.
  const needsReboot = Array.isArray(data.actions)
    ? data.actions.some((a) => isObj(a) && a.effect === "reboot")
    : false;
  return parseWire(planSchema, { ...data, needsReboot }, file);
}
