// Which nodes to power on now: the rollout's one decision, pure and deterministic (the time is
// passed in), so the server, the tests and the bench run the same code. It first moves the rollout
// (the canary passed or failed, a wave ended or passed its failure threshold, everything ended), then
// chooses waiting nodes within every limit: the wave's size, the in-flight maximum in total and per
// rack, and a minimum interval between two power-ons in one rack (staggered power-on, so a rack's
// PDUs and uplink see one boot storm at a time). Held and unapproved nodes are never chosen.
import {
  ENDED,
  IN_FLIGHT,
  type NodeRolloutState,
  type RolloutEvent,
  type RolloutState,
  rolloutTransition,
} from "./states.js";

export interface RolloutConfig {
  /** Nodes in the canary wave (0: no canary). The canary must fully succeed before any other wave. */
  canarySize: number;
  /** Nodes per wave after the canary. */
  waveSize: number;
  maxInFlight: number;
  maxInFlightPerRack: number;
  /** A wave halts the rollout when failed / wave size passes this (0.2: more than 20% failed). */
  failureThreshold: number;
  /** At least this long between two power-ons in one rack (0: no stagger). */
  powerOnIntervalMs: number;
}

export interface Rollout {
  state: RolloutState;
  /** The current wave: 0 is the canary, 1... the waves after it. */
  wave: number;
  config: RolloutConfig;
}

export interface RolloutNode {
  id: string;
  rack: string;
  /** The operator approved it (hold before destroy): only approved nodes are ever chosen. */
  approved: boolean;
  state: NodeRolloutState;
  /** The wave it was powered on in; null while it waits. */
  wave: number | null;
  /** When the rollout last powered it on (ms); null when never. */
  poweredOnAt: number | null;
}

export interface Decision {
  /** Rollout events to apply, in order (the state and wave below already include them). */
  events: RolloutEvent[];
  state: RolloutState;
  wave: number;
  /** Power these on now, in this order; each joins `wave`. */
  powerOn: string[];
  /** The earliest time a stagger interval lets a rack power on again (call next() again then); null: no wait. */
  wakeAt: number | null;
  /** Why nothing (more) was chosen, one line each, for status and the dashboard. */
  why: string[];
}

const eligible = (n: RolloutNode) => n.approved && n.state === "waiting";

/** The next wave's planned size: what it may still take, up to its limit. */
function planned(limit: number, members: number, waiting: number): number {
  return Math.min(limit, members + waiting);
}

export function next(rollout: Rollout, nodes: readonly RolloutNode[], now: number): Decision {
  const c = rollout.config;
  let state = rollout.state;
  let wave = rollout.wave;
  const events: RolloutEvent[] = [];
  const why: string[] = [];
  const apply = (e: RolloutEvent) => {
    const t = rolloutTransition(state, e);
    if (t.expected) {
      state = t.state;
      events.push(e);
    }
  };

  // One pass: counts per rack and per state of the current wave.
  let inFlight = 0;
  let waiting = 0;
  const rackFlight = new Map<string, number>();
  const rackLast = new Map<string, number>();
  const wave$ = { members: 0, ended: 0, failed: 0, verified: 0 };
  const count = (w: number) => {
    wave$.members = 0;
    wave$.ended = 0;
    wave$.failed = 0;
    wave$.verified = 0;
    for (const n of nodes) {
      if (n.wave !== w) continue;
      wave$.members++;
      if (ENDED.has(n.state)) wave$.ended++;
      if (n.state === "failed") wave$.failed++;
      if (n.state === "verified") wave$.verified++;
    }
  };
  for (const n of nodes) {
    if (IN_FLIGHT.has(n.state)) {
      inFlight++;
      rackFlight.set(n.rack, (rackFlight.get(n.rack) ?? 0) + 1);
    }
    if (eligible(n)) waiting++;
    if (n.poweredOnAt !== null && n.poweredOnAt > (rackLast.get(n.rack) ?? Number.NEGATIVE_INFINITY))
      rackLast.set(n.rack, n.poweredOnAt);
  }
  count(wave);

  // Move the rollout: the canary's verdict, a wave's threshold and end, the end of everything.
  if (state === "canary" || state === "canary-paused") {
    const size = planned(c.canarySize, wave$.members, waiting);
    if (wave$.failed > 0) apply("threshold");
    else if (state === "canary" && wave$.members >= size && wave$.ended === wave$.members) {
      apply("canary-passed");
      wave = 1;
      count(wave);
    }
  }
  if (state === "running" || state === "paused") {
    const size = planned(c.waveSize, wave$.members, waiting);
    if (size > 0 && wave$.failed / size > c.failureThreshold) apply("threshold");
    else if (
      state === "running" &&
      wave$.members > 0 &&
      wave$.members >= size &&
      wave$.ended === wave$.members
    ) {
      apply("wave-done");
      wave++;
      count(wave);
    }
    if (state === "running" && waiting === 0 && inFlight === 0 && wave$.members === wave$.ended)
      apply("finished");
  }

  const out: Decision = { events, state, wave, powerOn: [], wakeAt: null, why };
  if (state !== "canary" && state !== "running") {
    why.push(`rollout ${state}: nothing is powered on`);
    return out;
  }
  let room =
    (state === "canary" ? planned(c.canarySize, wave$.members, waiting) : c.waveSize) - wave$.members;
  if (room <= 0) {
    why.push(`wave ${wave} is full (${wave$.members}): waiting for it to end`);
    return out;
  }

  // Candidates round-robin across racks (sorted by name, nodes by id): the canary and each wave
  // spread over the racks instead of filling the first one.
  const byRack = new Map<string, RolloutNode[]>();
  for (const n of nodes) if (eligible(n)) (byRack.get(n.rack) ?? byRack.set(n.rack, []).get(n.rack))?.push(n);
  const racks = [...byRack.keys()].sort();
  for (const r of racks) byRack.get(r)?.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const cursor = new Map<string, number>();
  const blocked = new Set<string>();
  let total = inFlight;
  while (room > 0 && total < c.maxInFlight && blocked.size < racks.length) {
    for (const r of racks) {
      if (room <= 0 || total >= c.maxInFlight) break;
      if (blocked.has(r)) continue;
      const list = byRack.get(r) ?? [];
      const i = cursor.get(r) ?? 0;
      const last = rackLast.get(r);
      const flight = rackFlight.get(r) ?? 0;
      if (i >= list.length) {
        blocked.add(r);
        continue;
      }
      if (flight >= c.maxInFlightPerRack) {
        why.push(`rack ${r}: ${flight} in flight (max ${c.maxInFlightPerRack})`);
        blocked.add(r);
        continue;
      }
      if (last !== undefined && c.powerOnIntervalMs > 0 && now - last < c.powerOnIntervalMs) {
        const at = last + c.powerOnIntervalMs;
        out.wakeAt = out.wakeAt === null ? at : Math.min(out.wakeAt, at);
        why.push(`rack ${r}: staggered, next power-on at ${at}`);
        blocked.add(r);
        continue;
      }
      const n = list[i] as RolloutNode;
      cursor.set(r, i + 1);
      out.powerOn.push(n.id);
      rackFlight.set(r, flight + 1);
      if (c.powerOnIntervalMs > 0) rackLast.set(r, now);
      total++;
      room--;
    }
  }
  if (total >= c.maxInFlight) why.push(`${total} in flight (max ${c.maxInFlight})`);
  return out;
}
