// A plan is a diff against what the host held when it was planned. Applied later (`apply --plan`, a
// plan reviewed yesterday), a file that changed since would be overwritten with content computed from
// its old text, and undo would restore the old text too. So before the first action: every file the
// plan writes or removes must still hold what the plan saw (`previous`), or already hold what the
// plan puts there (converged, e.g. an interrupted run of the same plan). Anything else refuses the
// plan with a unified diff of what changed since planning.
import { InputError } from "../core/errors.js";
import type { TargetFs } from "../host/target.js";
import type { Plan } from "../plan/actions.js";
import { renderDrift } from "../plan/diff.js";

export class StalePlanError extends InputError {
  override name = "StalePlanError";
  constructor(
    message: string,
    /** The paths that changed since planning. */
    readonly paths: string[],
  ) {
    super(message);
  }
}

/** Throws StalePlanError when a file the plan touches changed since it was planned. */
export async function refuseStalePlan(plan: Plan, target: TargetFs): Promise<void> {
  const drifted: { path: string; diff: string }[] = [];
  for (const a of plan.actions) {
    if (a.kind !== "write-file" && a.kind !== "remove-file") continue;
    const now = await target.read(a.path);
    const planned = a.kind === "write-file" ? a.content : null;
    if (now === a.previous || now === planned) continue;
    drifted.push({ path: a.path, diff: renderDrift(a.path, a.previous, now) });
  }
  if (drifted.length === 0) return;
  const paths = drifted.map((d) => d.path);
  throw new StalePlanError(
    `the plan is stale: ${paths.join(", ")} changed since it was planned; plan again ` +
      `(kvmstrap plan) and review the new plan\n${drifted.map((d) => d.diff).join("\n")}`,
    paths,
  );
}
