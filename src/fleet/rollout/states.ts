// A rollout and its nodes as explicit transition tables. A rollout runs a canary wave that must fully
// succeed, then waves of the rest; it can be paused and resumed, halts by itself when a wave's failure
// rate passes its threshold (the operator resumes it after looking), and can be aborted. A node in a
// rollout waits, is powered on, boots, installs, is installed and verified, or fails; held nodes are
// never powered on. An event a row does not list changes nothing and is reported as unexpected: the
// tables never throw, whatever order the server sees things in.

export const ROLLOUT_STATES = [
  "pending", // created, not started
  "canary", // powering on and watching the canary wave
  "canary-paused", // the operator paused it during the canary
  "canary-halted", // a canary node failed: nothing more is powered on until the operator resumes
  "running", // the canary passed; waves of the rest, one at a time
  "paused", // the operator paused it between or during waves
  "halted", // a wave's failure rate passed the threshold
  "aborted", // the operator aborted it (final)
  "done", // every eligible node ended (final)
] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export const ROLLOUT_EVENTS = [
  "start",
  "pause",
  "resume",
  "abort",
  "canary-passed", // every canary node verified
  "threshold", // a wave's (or the canary's) failures passed the threshold
  "wave-done", // every node of the wave ended, within the threshold: the next wave may start
  "finished", // no eligible node is left waiting and none is in flight
] as const;
export type RolloutEvent = (typeof ROLLOUT_EVENTS)[number];

type RolloutRow = Partial<Record<RolloutEvent, RolloutState>>;

export const ROLLOUT_TRANSITIONS: Readonly<Record<RolloutState, Readonly<RolloutRow>>> = {
  pending: { start: "canary", abort: "aborted" },
  canary: {
    pause: "canary-paused",
    abort: "aborted",
    "canary-passed": "running",
    threshold: "canary-halted",
  },
  "canary-paused": { resume: "canary", abort: "aborted", threshold: "canary-halted" },
  "canary-halted": { resume: "canary", abort: "aborted" },
  running: {
    pause: "paused",
    abort: "aborted",
    threshold: "halted",
    "wave-done": "running",
    finished: "done",
  },
  paused: { resume: "running", abort: "aborted", threshold: "halted" },
  halted: { resume: "running", abort: "aborted" },
  aborted: {},
  done: {},
};

export const NODE_ROLLOUT_STATES = [
  "waiting", // eligible once approved and not held; not yet chosen
  "powering-on", // chosen: the power port was asked to turn it on
  "booting", // the boot server saw it (DHCP, TFTP, the appliance)
  "installing", // the install runs
  "installed", // the disk is written; the installed system has not verified yet
  "verified", // kvmstrap verify passed on it: a success
  "failed", // the install or the boot failed, or it stalled: a failure of its wave
  "held", // held by the operator or by its answer: never powered on
] as const;
export type NodeRolloutState = (typeof NODE_ROLLOUT_STATES)[number];

export const NODE_ROLLOUT_EVENTS = [
  "power-on", // the decision chose it
  "powered", // the power port acknowledged
  "boot-seen",
  "installing",
  "installed",
  "verified",
  "failed",
  "timeout", // no progress within its state's time
  "hold",
  "release", // the operator released a hold
  "rearm", // the operator asked for a fresh attempt
] as const;
export type NodeRolloutEvent = (typeof NODE_ROLLOUT_EVENTS)[number];

type NodeRow = Partial<Record<NodeRolloutEvent, NodeRolloutState>>;

/** Progress reports: a later one may arrive before an earlier one (different senders); the table takes the furthest. */
const progress = (from: NodeRolloutState): NodeRow => {
  const order: NodeRolloutState[] = ["powering-on", "booting", "installing", "installed", "verified"];
  const events: [NodeRolloutEvent, NodeRolloutState][] = [
    ["powered", "booting"],
    ["boot-seen", "booting"],
    ["installing", "installing"],
    ["installed", "installed"],
    ["verified", "verified"],
  ];
  const at = order.indexOf(from);
  return Object.fromEntries(events.map(([e, to]) => [e, order.indexOf(to) > at ? to : from]));
};

export const NODE_ROLLOUT_TRANSITIONS: Readonly<Record<NodeRolloutState, Readonly<NodeRow>>> = {
  waiting: { "power-on": "powering-on", hold: "held" },
  "powering-on": { ...progress("powering-on"), failed: "failed", timeout: "failed" },
  booting: { ...progress("booting"), failed: "failed", timeout: "failed" },
  installing: { ...progress("installing"), failed: "failed", timeout: "failed" },
  installed: { ...progress("installed"), failed: "failed", timeout: "failed" },
  verified: { verified: "verified", rearm: "waiting" },
  failed: { failed: "failed", rearm: "waiting", hold: "held" },
  held: { hold: "held", release: "waiting", rearm: "waiting" },
};

/** Nodes the rollout has powered on and not yet seen end: what the in-flight limits count. */
export const IN_FLIGHT: ReadonlySet<NodeRolloutState> = new Set([
  "powering-on",
  "booting",
  "installing",
  "installed",
]);
/** A node that ended, for its wave: verified, failed, or held on the way. */
export const ENDED: ReadonlySet<NodeRolloutState> = new Set(["verified", "failed", "held"]);

export interface Transition<S> {
  state: S;
  /** False when the table does not list the event in this state (the state is kept). */
  expected: boolean;
}

export function rolloutTransition(state: RolloutState, event: RolloutEvent): Transition<RolloutState> {
  const to = ROLLOUT_TRANSITIONS[state][event];
  return to ? { state: to, expected: true } : { state, expected: false };
}

export function nodeTransition(
  state: NodeRolloutState,
  event: NodeRolloutEvent,
): Transition<NodeRolloutState> {
  const to = NODE_ROLLOUT_TRANSITIONS[state][event];
  return to ? { state: to, expected: true } : { state, expected: false };
}
