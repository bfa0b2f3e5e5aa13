// A rollout's parameters as the operator gives them (the HTTP body, the CLI's flags), and the one
// JSON schema that bounds them: the route validates with it, the runner trusts what passed.
import type { RolloutConfig } from "./decide.js";

export interface RolloutParams extends RolloutConfig {
  name?: string;
  /** Only nodes of these racks (default: every rack). */
  racks?: string[];
  /** Only these nodes: store ids, or MACs (default: every node). */
  nodes?: string[];
}

const NAME = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,62}$";
const NODE = "^(?:[0-9]{1,15}|(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2})$";
const DAY_MS = 86_400_000;

export const ROLLOUT_PARAMS_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: [
    "canarySize",
    "waveSize",
    "maxInFlight",
    "maxInFlightPerRack",
    "failureThreshold",
    "powerOnIntervalMs",
  ],
  properties: {
    name: { type: "string", pattern: NAME },
    canarySize: { type: "integer", minimum: 1, maximum: 100_000 },
    waveSize: { type: "integer", minimum: 1, maximum: 100_000 },
    maxInFlight: { type: "integer", minimum: 1, maximum: 100_000 },
    maxInFlightPerRack: { type: "integer", minimum: 1, maximum: 100_000 },
    failureThreshold: { type: "number", minimum: 0, maximum: 1 },
    powerOnIntervalMs: { type: "integer", minimum: 0, maximum: DAY_MS },
    racks: { type: "array", maxItems: 1000, uniqueItems: true, items: { type: "string", pattern: NAME } },
    nodes: { type: "array", maxItems: 100_000, uniqueItems: true, items: { type: "string", pattern: NODE } },
  },
} as const;

/** The decision's part of the parameters (stored params may carry more). */
export function configOf(p: RolloutParams): RolloutConfig {
  return {
    canarySize: p.canarySize,
    waveSize: p.waveSize,
    maxInFlight: p.maxInFlight,
    maxInFlightPerRack: p.maxInFlightPerRack,
    failureThreshold: p.failureThreshold,
    powerOnIntervalMs: p.powerOnIntervalMs,
  };
}
