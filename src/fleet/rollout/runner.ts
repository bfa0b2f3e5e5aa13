// The rollout runner: the server's loop around the one decision (decide.ts). Each step loads the
// active rollout and its nodes from the store, applies what the store learned since the last step
// (a node's boot, install, verify or failure from the PXE side and the agent, holds, re-arms, an
// in-flight state past its timeout), asks next() what to do, saves every change with an event in
// one transaction, and only then powers the chosen nodes on. Because the power-on is recorded
// before the power port is asked, a runner restarted over the same store (kill -9, a new serve)
// finds those nodes in flight and never powers one on twice; it resumes from the rollout's event
// cursor. Steps run one at a time; a store event or the decision's wakeAt (stagger) or the next
// timeout wakes it. Operator actions go through the transition table: a refused one is an error.
import type { PowerPort } from "../power/port.js";
import {
  type NodeChange,
  RolloutStore,
  StaleRollout,
  type StoredRollout,
  type StoredRolloutNode,
} from "../store/rollouts.js";
import type { FleetStore } from "../store/store.js";
import { next } from "./decide.js";
import { configOf, type RolloutParams } from "./params.js";
import {
  IN_FLIGHT,
  type NodeRolloutEvent,
  type NodeRolloutState,
  nodeTransition,
  type RolloutEvent,
  type RolloutState,
  rolloutTransition,
} from "./states.js";
import { decideNodes, type RolloutView, viewOf } from "./view.js";

export type InFlightState = "powering-on" | "booting" | "installing" | "installed";

/** How long a node may stay in each in-flight state before it counts as failed (ms). */
export const DEFAULT_TIMEOUTS: Readonly<Record<InFlightState, number>> = {
  "powering-on": 5 * 60_000,
  booting: 20 * 60_000,
  installing: 90 * 60_000,
  installed: 30 * 60_000,
};

/**
 * What a node's state on its timeline (src/pxe/node-state.ts, stored as events with a state) or a
 * store event type means to its rollout. Anything else moves nothing.
 */
export const NODE_OUTCOMES: Readonly<Record<string, NodeRolloutEvent>> = {
  offered: "boot-seen",
  tftp: "boot-seen",
  ipxe: "boot-seen",
  script: "boot-seen",
  kernel: "boot-seen",
  initrd: "boot-seen",
  rootfs: "boot-seen",
  "appliance-up": "boot-seen",
  "answer-fetched": "boot-seen",
  installing: "installing",
  installed: "installed",
  "local-boot": "installed",
  rebooted: "installed",
  verified: "verified",
  failed: "failed",
  stalled: "timeout",
  // serve's re-arm (POST /v1/fleet/nodes/NODE/rearm) sends the node back to "discovered"
  discovered: "rearm",
  "node-rearmed": "rearm",
};

/** An operator action the transition table refused, or a rollout that does not exist (the route's 409/404). */
export class RolloutRefused extends Error {
  override name = "RolloutRefused";
  constructor(
    message: string,
    readonly status: 404 | 409 | 400 = 409,
  ) {
    super(message);
  }
}

export interface RunnerOptions {
  store: FleetStore;
  /** The node's power port from its stored settings (undefined: it has none). */
  power: (nodeId: number, settings: unknown) => PowerPort;
  clock?: () => number;
  timeouts?: Partial<Record<InFlightState, number>>;
  /** Called with the rollout after every change (the route publishes it on /v1/events). */
  onChange?: (rollout: RolloutView) => void;
  /** Who the events say wrote them. */
  source?: string;
  /**
   * Whether this runner decides (it holds the region's lease; default: always). One that does not
   * takes no step and powers nothing: it reads, and writes operators' actions to the store, where
   * the deciding runner (woken by their events) takes them up.
   */
  leads?: () => boolean;
}

/** Times a step or an action is decided again when another serve moved the rollout meanwhile. */
const STALE_RETRIES = 5;

type Action = "start" | "pause" | "resume" | "abort";

export class RolloutRunner {
  readonly rollouts: RolloutStore;
  private readonly clock: () => number;
  private readonly timeouts: Record<InFlightState, number>;
  private queue: Promise<unknown> = Promise.resolve();
  private powering: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => Promise<void>) | undefined;
  private stopped = false;
  /** When this runner last called a power port, per rack. */
  private readonly lastCall = new Map<string, number>();

  constructor(private readonly o: RunnerOptions) {
    this.rollouts = new RolloutStore(o.store, o.source ?? "rollout");
    this.clock = o.clock ?? Date.now;
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  }

  /** Follows the store and takes the first step (resuming an active rollout). */
  async start(): Promise<void> {
    this.stopped = false;
    this.unsubscribe = await this.o.store.subscribe((events) => {
      if (this.leads()) {
        if (events.some((e) => e.source !== (this.o.source ?? "rollout"))) this.poke();
      } else if (events.some((e) => e.type === "rollout" || e.type === "rollout-node")) this.mirror();
    });
    await this.step();
  }

  /** Stops following; waits for the step and power-ons under way. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.unsubscribe?.();
    await this.idle();
  }

  /** Resolves once no step or power-on is under way (tests, shutdown). */
  async idle(): Promise<void> {
    for (;;) {
      const q = this.queue;
      const p = this.powering;
      await Promise.allSettled([q, p]);
      if (q === this.queue && p === this.powering) return;
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** A step soon; pokes while one is already queued add nothing (an event flood is one step). */
  private poke(): void {
    if (this.stopped || this.poked || !this.leads()) return;
    this.poked = true;
    void this.serial(async () => {
      this.poked = false;
      const r = await this.rollouts.active();
      if (r) await this.takeStep(r.id);
    }).catch(() => {});
  }
  private poked = false;

  private leads(): boolean {
    return this.o.leads?.() ?? true;
  }

  /** Not deciding: the rollout's changes (the leader's) still reach onChange (this serve's /v1/events). */
  private mirror(): void {
    if (this.stopped || this.mirrored || !this.o.onChange) return;
    this.mirrored = true;
    void this.serial(async () => {
      this.mirrored = false;
      const v = await this.view();
      if (v) this.o.onChange?.(v);
    }).catch(() => {});
  }
  private mirrored = false;

  /** Creates a rollout over the nodes its params select and starts it (pending, then canary). */
  create(params: RolloutParams, by = "operator"): Promise<RolloutView> {
    return this.serial(async () => {
      const all = await this.o.store.nodes();
      const racks = params.racks ? new Set(params.racks) : undefined;
      const wanted = params.nodes?.map((n) => n.toLowerCase().replaceAll("-", ":"));
      const ids = all
        .filter((n) => !racks || (n.rack !== null && racks.has(n.rack)))
        .filter((n) => !wanted || wanted.includes(String(n.id)) || n.macs.some((m) => wanted.includes(m)))
        .map((n) => n.id);
      if (ids.length === 0) throw new RolloutRefused("no node matches the rollout's racks and nodes", 400);
      const name = params.name ?? `rollout-${new Date(this.clock()).toISOString().slice(0, 16)}`;
      const id = await this.rollouts.create(name, { ...params, name }, ids, this.clock()).catch((e) => {
        throw e instanceof Error && e.name === "RolloutConflict" ? new RolloutRefused(e.message) : e;
      });
      await this.rollouts.save({
        id,
        status: "canary",
        events: [{ event: "start", status: "canary", wave: 0, by }],
      });
      return this.takeStep(id);
    });
  }

  /** pause, resume or abort (or start a pending one), as the transition table allows. */
  act(id: number, action: Action, by = "operator"): Promise<RolloutView> {
    return this.serial(() => this.actOnce(id, action, by, STALE_RETRIES));
  }

  private async actOnce(id: number, action: Action, by: string, retries: number): Promise<RolloutView> {
    const r = await this.rollouts.get(id);
    if (!r) throw new RolloutRefused(`no rollout ${id}`, 404);
    const from = r.status as RolloutState;
    const t = rolloutTransition(from, action);
    if (!t.expected) throw new RolloutRefused(`rollout ${id} is ${from}: it cannot ${action}`);
    if (action === "resume" && (from === "halted" || from === "canary-halted")) {
      // next() would halt it again at once: the failures that halted it are still there.
      const nodes = await this.rollouts.nodes(id);
      const d = next(
        { state: t.state, wave: r.wave, config: configOf(r.params as RolloutParams) },
        decideNodes(nodes),
        this.clock(),
      );
      if (d.events.includes("threshold"))
        throw new RolloutRefused(
          `rollout ${id} is ${from}: wave ${r.wave} still has failed nodes past the threshold; re-arm or hold them first`,
        );
    }
    try {
      await this.rollouts.save({
        id,
        version: r.version,
        status: t.state,
        events: [{ event: action, status: t.state, wave: r.wave, by }],
      });
    } catch (e) {
      // Another serve's runner moved it meanwhile: the action is judged again on what it is now.
      if (e instanceof StaleRollout && retries > 0) return this.actOnce(id, action, by, retries - 1);
      throw e;
    }
    return this.takeStep(id);
  }

  async view(id?: number): Promise<RolloutView | undefined> {
    const r = id === undefined ? await this.rollouts.current() : await this.rollouts.get(id);
    if (!r) return undefined;
    return viewOf(r, await this.rollouts.nodes(r.id), await this.rollouts.events(r.id), this.clock());
  }

  /** One step of the active rollout (serialised with every other). */
  step(): Promise<RolloutView | undefined> {
    return this.serial(async () => {
      const r = await this.rollouts.active();
      return r ? this.takeStep(r.id) : undefined;
    });
  }

  private async takeStep(id: number, retries = STALE_RETRIES): Promise<RolloutView> {
    const now = this.clock();
    const r = (await this.rollouts.get(id)) as StoredRollout;
    if (!this.leads()) return viewOf(r, await this.rollouts.nodes(id), await this.rollouts.events(id), now);
    const stored = await this.rollouts.nodes(id);
    const byId = new Map(stored.map((n) => [n.nodeId, { ...n }]));
    const changed = new Map<number, NodeChange>();
    const move = (n: StoredRolloutNode, e: NodeRolloutEvent, detail: string | null) => {
      const t = nodeTransition(n.state as NodeRolloutState, e);
      if (!t.expected || t.state === n.state) return;
      n.state = t.state;
      n.stateSince = now;
      n.detail = detail;
      if (e === "rearm" || e === "release") n.wave = null;
      changed.set(n.nodeId, { ...n, event: e });
    };

    // What the store learned since the last step, in event order.
    let cursor = r.eventSeq;
    for (;;) {
      const batch = await this.rollouts.nodeEventsSince(cursor);
      for (const ev of batch) {
        const n = ev.nodeId === null ? undefined : byId.get(ev.nodeId);
        const outcome = NODE_OUTCOMES[ev.state ?? ev.type];
        if (n && outcome) move(n, outcome, `${ev.state ?? ev.type} (event ${ev.seq})`);
      }
      if (batch.length === 0) break;
      cursor = batch[batch.length - 1]?.seq ?? cursor;
      if (batch.length < 1000) break;
    }
    // Holds are read from the store as they are now, not replayed.
    for (const n of byId.values()) {
      if (n.hold !== null && (n.state === "waiting" || n.state === "failed")) move(n, "hold", n.hold);
      // Chosen for its wave, its answer then failed the check against its report: the wave did not
      // install it, which counts against the wave (a broken layer in the fleet directory halts the
      // rollout at its threshold instead of holding every node of the fleet one wave at a time).
      else if (n.holdSource === "answer" && IN_FLIGHT.has(n.state as NodeRolloutState))
        move(n, "failed", n.hold);
      else if (n.hold === null && n.state === "held") move(n, "release", "hold released");
    }
    for (const n of byId.values()) {
      const limit = IN_FLIGHT.has(n.state as NodeRolloutState)
        ? this.timeouts[n.state as InFlightState]
        : undefined;
      if (limit !== undefined && now - n.stateSince >= limit)
        move(n, "timeout", `no progress in ${n.state} for ${Math.round((now - n.stateSince) / 1000)} s`);
    }

    const nodes = [...byId.values()];
    const d = next(
      { state: r.status as RolloutState, wave: r.wave, config: configOf(r.params as RolloutParams) },
      decideNodes(nodes),
      now,
    );
    const events: { event: RolloutEvent; status: string; wave: number }[] = [];
    let state = r.status as RolloutState;
    let wave = r.wave;
    for (const e of d.events) {
      state = rolloutTransition(state, e).state;
      if (e === "canary-passed" || e === "wave-done") wave++;
      events.push({ event: e, status: state, wave });
    }
    for (const idText of d.powerOn) {
      const n = byId.get(Number(idText));
      if (!n) continue;
      move(n, "power-on", null);
      n.wave = d.wave;
      n.poweredOnAt = now;
      changed.set(n.nodeId, { ...n, event: "power-on" });
    }
    if (changed.size > 0 || events.length > 0 || cursor !== r.eventSeq)
      try {
        await this.rollouts.save({
          id,
          version: r.version,
          status: d.state,
          wave: d.wave,
          eventSeq: cursor,
          events,
          nodes: [...changed.values()],
        });
      } catch (e) {
        // An operator's action through another serve landed meanwhile: decide again on it.
        if (e instanceof StaleRollout && retries > 0) return this.takeStep(id, retries - 1);
        throw e;
      }

    // Powered on only now that the store says so: a crash here leaves them in flight, never twice on.
    if (d.powerOn.length > 0)
      this.powerOn(
        id,
        d.powerOn.map((n) => ({ nodeId: Number(n), rack: byId.get(Number(n))?.rack ?? "" })),
        configOf(r.params as RolloutParams).powerOnIntervalMs,
      );
    this.schedule(d.wakeAt, nodes);
    const view = viewOf({ ...r, status: d.state, wave: d.wave }, nodes, await this.rollouts.events(id), now);
    if (changed.size > 0 || events.length > 0) this.o.onChange?.(view);
    return view;
  }

  /**
   * One node after another, in the decision's order; each answer is saved as its own step. The
   * decision spaced them per rack; a slow port (a BMC taking seconds) could bunch the calls up, so
   * the calls themselves keep the interval too, and the time of the call is what is saved.
   */
  private powerOn(id: number, chosen: { nodeId: number; rack: string }[], intervalMs: number): void {
    this.powering = this.powering.then(async () => {
      for (const { nodeId, rack } of chosen) {
        const wait = (this.lastCall.get(rack) ?? Number.NEGATIVE_INFINITY) + intervalMs - this.clock();
        if (intervalMs > 0 && wait > 0) await new Promise((r) => setTimeout(r, wait));
        const at = this.clock();
        this.lastCall.set(rack, at);
        let outcome: NodeRolloutEvent = "powered";
        let detail: string | null = "powered on";
        try {
          const settings = await this.rollouts.power(nodeId);
          if (settings === undefined) throw new Error("no power settings");
          await this.o.power(nodeId, settings).on();
        } catch (e) {
          outcome = "failed";
          detail = `power on: ${(e as Error).message}`;
        }
        await this.serial(async () => {
          // The lease lost meanwhile: the leader now decides; the node times out if it never boots.
          if (!this.leads()) return;
          const n = (await this.rollouts.nodes(id)).find((x) => x.nodeId === nodeId);
          if (!n) return;
          const t = nodeTransition(n.state as NodeRolloutState, outcome);
          if (!t.expected || t.state === n.state) return;
          await this.rollouts.save({
            id,
            nodes: [
              { ...n, state: t.state, stateSince: this.clock(), poweredOnAt: at, detail, event: outcome },
            ],
          });
          return this.takeStep(id);
        }).catch(() => {});
      }
    });
  }

  private schedule(wakeAt: number | null, nodes: readonly StoredRolloutNode[]): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.stopped) return;
    let at = wakeAt ?? Number.POSITIVE_INFINITY;
    for (const n of nodes) {
      const limit = IN_FLIGHT.has(n.state as NodeRolloutState)
        ? this.timeouts[n.state as InFlightState]
        : undefined;
      if (limit !== undefined) at = Math.min(at, n.stateSince + limit);
    }
    if (!Number.isFinite(at)) return;
    // Capped so a clock jump is noticed within a minute.
    this.timer = setTimeout(() => this.poke(), Math.min(60_000, Math.max(0, at - this.clock())));
    this.timer.unref();
  }
}
