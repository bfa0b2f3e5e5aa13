// The fleet's per-node answers as a use case: read the fleet directory, assign and merge the node's
// layers, and check the merged answer against the node's own report with the one rule set
// (src/fleet/answers). `kvmstrap fleet answer|explain` call it offline; `kvmstrap serve` will call
// resolveNode with the fleet it keeps loaded and the report the node posted.
import type { HostReport } from "../detect/types.js";
import { readFleetDir } from "../fleet/answers/files.js";
import { explainKey, type KeyExplanation, type NodeAnswer, resolveNode } from "../fleet/answers/resolve.js";
import type { NodeFacts } from "../fleet/answers/types.js";

export { answerText, answerYaml, explainText } from "../fleet/answers/render.js";
export type { KeyExplanation, NodeAnswer } from "../fleet/answers/resolve.js";
export { formatHold } from "../fleet/answers/types.js";

export interface FleetNodeQuery extends Omit<NodeFacts, "report"> {
  /** The fleet directory (site.yaml, racks/, roles/, nodes/, assign.yaml). */
  fleet: string;
  report: HostReport | null;
}

export async function fleetNodeAnswer(q: FleetNodeQuery): Promise<NodeAnswer> {
  const { fleet, ...facts } = q;
  return resolveNode(await readFleetDir(fleet), facts);
}

export async function fleetExplain(q: FleetNodeQuery, key: string): Promise<KeyExplanation> {
  return explainKey(await fleetNodeAnswer(q), key);
}
