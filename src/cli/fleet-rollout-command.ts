// `kvmstrap fleet rollout start|pause|resume|abort|status`: placeholder until the rollout runner
// joins `kvmstrap serve`; `kvmstrap fleet` dispatches here.
import { UsageError } from "./errors.js";

export async function fleetRolloutCommand(_argv: string[]): Promise<number> {
  throw new UsageError("fleet rollout is not available yet");
}
