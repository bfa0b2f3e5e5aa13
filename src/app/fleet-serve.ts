// `kvmstrap serve`'s side of the fleet: every node event the server sees goes to the fleet store
// (keyed by the store's identity resolution: DMI UUID and serial first, MACs second), discovered
// nodes post their reports here, and a node's answer is served only once it is approved, not held,
// and its merged answer (--fleet) passed the rule set against its own stored report. The store is
// the truth for the fleet's views; the server's in-memory node table stays the hot path for boots.
import { type HostReport, hostReport } from "../detect/types.js";
import { type Fleet, readFleetDir } from "../fleet/answers/files.js";
import { answerYaml } from "../fleet/answers/render.js";
import { resolveNode } from "../fleet/answers/resolve.js";
import { formatHold } from "../fleet/answers/types.js";
import { type PowerSettings, powerPort } from "../fleet/power/index.js";
import { RolloutRunner } from "../fleet/rollout/runner.js";
import { IN_FLIGHT, type NodeRolloutState } from "../fleet/rollout/states.js";
import type { RolloutView } from "../fleet/rollout/view.js";
import {
  type EventInput,
  type FleetStore,
  type Lease,
  type NodeRow,
  type NodeSummary,
  normalMac,
  openStore,
  ROLLOUT_RUNNER_LEASE,
  redact,
} from "../fleet/store/index.js";
import { RolloutStore } from "../fleet/store/rollouts.js";

export interface FleetHoldView {
  source: string;
  reason: string;
  since: string;
}

/** A node as the fleet routes, the CLI and the dashboard show it (see /tmp contract: FleetNode). */
export interface FleetNode {
  id: string;
  name: string | null;
  rack: string | null;
  macs: string[];
  uuid: string | null;
  serial: string | null;
  assetTag: string | null;
  /** The node's boot state (the PXE node state), or "held" while a hold is open. */
  state: string;
  approved: boolean;
  held: boolean;
  holds: FleetHoldView[];
  lastEvent: { time: string; detail: string } | null;
  answer: "ready" | "held" | "none";
}

export interface FleetNodeDetail extends FleetNode {
  timeline: { time: string; state: string; detail: string }[];
  report: {
    cpu: { model: string | null; sockets: number | null; threads: number | null };
    memoryGiB: number | null;
    nics: { name: string | null; mac: string | null; driver: string | null; speedMbps: number | null }[];
    disks: { name: string; sizeBytes: number | null; model: string | null }[];
  } | null;
  flags: { kind: string; detail: string }[];
}

/** What a node says about itself besides its report: its DMI identity and every MAC it has. */
export interface NodeIdentity {
  uuid?: string | null | undefined;
  serial?: string | null | undefined;
  assetTag?: string | null | undefined;
  macs?: readonly string[] | undefined;
}

/** A node event the server saw, as the store keeps it. */
export interface SeenEvent {
  type: string;
  time: string;
  /** The state the node entered, when it moved. */
  state?: string | undefined;
  body: Record<string, unknown>;
}

export type AnswerOutcome =
  | { kind: "none"; reason: string }
  | { kind: "waiting"; node: number; reason: string }
  | { kind: "held"; node: number; reason: string }
  | { kind: "ready"; node: number; name: string; text: string };

export interface ServeFleetOptions {
  /** A directory (embedded PGlite) or a postgres:// URL. */
  store: string;
  /** This serve's rack (its L2 segment). */
  rack: string | null;
  /** The fleet answers directory; with it, unknown nodes are discovered and answered from it. */
  fleetDir?: string | undefined;
  /** Who writes the events ("serve <rack>"). */
  source: string;
}

/** Boot states anyone on the segment reaches with a made-up MAC: kept in memory until more happens. */
const EARLY = new Set(["discovered", "offered"]);
/** Events kept per MAC while its identity is unknown, and MACs kept so (a DHCP flood stays bounded). */
const PENDING_EVENTS = 64;
const PENDING_MACS = 4096;
/** A node seen past DHCP but never asking for its script is resolved by MAC alone after this. */
const PENDING_MS = 30_000;
/** Nodes changed meanwhile from which follow() reads the whole list once instead of each node. */
const FOLLOW_BATCH = 16;

interface Pending {
  events: { e: SeenEvent; done: (err?: unknown) => void }[];
  since: number;
  /** Got past DHCP: worth a node of its own even by MAC alone. */
  beyondEarly: boolean;
  /** The store was asked whether it knows the MAC already. */
  asked?: boolean;
}

export class ServeFleet {
  /** MAC -> node id, once the store resolved it. */
  private readonly ids = new Map<string, number>();
  private readonly pending = new Map<string, Pending>();
  /** The last append per MAC: the intake acknowledges an event only once it is committed. */
  private readonly last = new Map<string, Promise<void>>();
  /** Names from the nodes file (not kept in the store). */
  private readonly names = new Map<number, string>();
  /** The last answer check per node (not kept: "none" until checked again after a restart). */
  private readonly answers = new Map<number, "ready" | "held">();
  private readonly sweeper: NodeJS.Timeout;
  private failures = 0;

  /** Whether the store is open (false while it opens in the background, and if that failed). */
  private open = false;

  private constructor(
    private readonly opening: Promise<FleetStore>,
    readonly o: ServeFleetOptions,
    private readonly onProblem: (message: string) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 5000);
    this.sweeper.unref();
    opening.then(
      () => {
        this.open = true;
      },
      (e: unknown) =>
        onProblem(`fleet store ${redact(o.store)}: ${(e as Error).message}; nothing is kept in it`),
    );
  }

  /**
   * Checks the fleet directory and opens the store. `wait`: before returning, so a bad --fleet or
   * --store is an exit-2 error before any socket opens; otherwise the store opens in the background
   * (PGlite's first open takes seconds) and what happens meanwhile waits for it.
   */
  static async start(
    o: ServeFleetOptions,
    onProblem: (message: string) => void,
    wait: boolean,
  ): Promise<ServeFleet> {
    if (o.fleetDir) await readFleetDir(o.fleetDir);
    const opening = openStore(o.store);
    if (wait) await opening;
    else opening.catch(() => {}); // said by the constructor
    return new ServeFleet(opening, o, onProblem);
  }

  /** The store, once open (fleet routes and discovery wait for it). */
  get store(): Promise<FleetStore> {
    return this.opening;
  }

  get ready(): boolean {
    return this.open;
  }

  get discovery(): boolean {
    return this.o.fleetDir !== undefined;
  }

  /** Where the store is, for the listening line (a URL without its password). */
  get where(): string {
    return redact(this.o.store);
  }

  // --- events -------------------------------------------------------------------------------------

  /**
   * Records an event of a node the server saw. A MAC whose node is not known yet is held back in
   * memory until the node says who it is (its script request or its report), so a NIC swap lands on
   * the old node and a DHCP flood writes nothing; one that got past DHCP but never says is resolved
   * by its MAC alone after 30 s.
   */
  record(mac: string, e: SeenEvent): Promise<void> {
    const id = this.ids.get(mac);
    let p: Promise<void>;
    if (id !== undefined && !this.pending.has(mac)) p = this.append(mac, id, e);
    else
      p = new Promise<void>((resolve, reject) => {
        let q = this.pending.get(mac);
        if (!q) {
          q = { events: [], since: Date.now(), beyondEarly: false };
          this.pending.set(mac, q);
          this.boundPending();
        }
        q.events.push({ e, done: (err) => (err ? reject(err) : resolve()) });
        if (q.events.length > PENDING_EVENTS) q.events.shift()?.done();
        if (e.state !== undefined && !EARLY.has(e.state)) {
          q.beyondEarly = true;
          if (!q.asked) {
            q.asked = true;
            void this.knownByMac(mac);
          }
        }
      });
    // Nobody may be waiting (a DHCP event): a failure is said once in a while, never thrown away silently.
    const tracked = p.catch((err: unknown) => {
      if (this.failures++ % 100 === 0)
        this.onProblem(
          `fleet store (${this.where}): an event of ${mac} was not stored: ${(err as Error).message}`,
        );
      throw err;
    });
    this.last.set(mac, tracked);
    return tracked;
  }

  /** Resolves once every event recorded so far for the MAC is committed (rejects if one failed). */
  settled(mac: string): Promise<void> {
    return this.last.get(mac) ?? Promise.resolve();
  }

  private append(mac: string, nodeId: number, e: SeenEvent): Promise<void> {
    const input: EventInput = {
      type: e.type,
      time: e.time,
      source: this.o.source,
      nodeId,
      mac,
      body: e.body,
    };
    if (e.state !== undefined) input.state = e.state;
    return this.opening.then((st) => st.append(input)).then(() => {});
  }

  private flush(mac: string, nodeId: number): void {
    const q = this.pending.get(mac);
    this.pending.delete(mac);
    for (const { e, done } of q?.events ?? [])
      this.append(mac, nodeId, e).then(
        () => done(),
        (err: unknown) => done(err),
      );
  }

  /**
   * A MAC the store knows already (serve restarted while the node installs): its node is that one,
   * so its events go on at once instead of waiting for the sweep (which would hold an agent's
   * event for 35 s and make it resend). A MAC the store does not know keeps waiting: a NIC swap
   * must land on the old node once it says who it is.
   */
  private async knownByMac(mac: string): Promise<void> {
    const node = await (await this.opening).nodeByMac(mac).catch(() => undefined);
    if (!node || !this.pending.has(mac)) return;
    this.ids.set(mac, node.id);
    this.flush(mac, node.id);
  }

  private boundPending(): void {
    for (const [mac, q] of this.pending) {
      if (this.pending.size <= PENDING_MACS) break;
      this.pending.delete(mac);
      for (const { done } of q.events) done();
    }
  }

  private sweep(): void {
    const now = Date.now();
    for (const [mac, q] of this.pending)
      if (q.beyondEarly && now - q.since > PENDING_MS)
        this.identify(mac, {}).catch(() => {
          // said by record's catch when its events fail
        });
  }

  // --- identity and reports -----------------------------------------------------------------------

  /** The node a MAC (with what it said of itself) is, created if new; its held-back events follow. */
  async identify(mac: string, who: NodeIdentity, name?: string): Promise<NodeRow> {
    const macs = [mac, ...(who.macs ?? [])];
    const r = await (await this.opening).resolveNode(
      {
        uuid: who.uuid ?? null,
        serial: who.serial ?? null,
        asset: who.assetTag ?? null,
        macs,
        complete: who.macs !== undefined,
      },
      { ...(this.o.rack ? { rack: this.o.rack } : {}), source: this.o.source },
    );
    for (const m of r.node.macs) this.ids.set(m, r.node.id);
    this.ids.set(normalMac(mac) ?? mac, r.node.id);
    if (name) this.names.set(r.node.id, name);
    this.flush(mac, r.node.id);
    return r.node;
  }

  /** A discovered node's report: identity from its DMI and every MAC, the report kept, its answer checked. */
  async saveReport(mac: string, who: NodeIdentity, report: HostReport): Promise<FleetNode> {
    const node = await this.identify(mac, who);
    await (await this.opening).saveReport(node.id, report, this.o.source);
    if (this.discovery && (await (await this.opening).approval(node.id))) await this.checkAnswer(node);
    return this.view(node);
  }

  // --- answers ------------------------------------------------------------------------------------

  /** What a node gets when it asks for its answer: hold before destroy. */
  async answerFor(mac: string): Promise<AnswerOutcome> {
    if (!this.o.fleetDir)
      return { kind: "none", reason: "no --fleet directory: no answer for unknown nodes" };
    const id = this.ids.get(mac) ?? (await (await this.opening).nodeByMac(mac))?.id;
    const node = id === undefined ? undefined : await (await this.opening).node(id);
    if (!node)
      return { kind: "none", reason: `${mac} is not a known node: it must boot through this server first` };
    if (!(await (await this.opening).approval(node.id)))
      return {
        kind: "waiting",
        node: node.id,
        reason: `waiting for approval: node ${node.id} (kvmstrap fleet approve ${node.id})`,
      };
    const holds = await (await this.opening).holds(node.id);
    if (holds.length) return { kind: "held", node: node.id, reason: `held: ${holdText(holds)}` };
    // In an active rollout, approval is not enough: the node installs when its wave powers it on,
    // so the rollout's limits (canary, wave, in flight per rack) hold for nodes already running
    // and polling, too.
    const place = await new RolloutStore(await this.opening, this.o.source).placeOf(node.id);
    if (place && !IN_FLIGHT.has(place.state as NodeRolloutState))
      return {
        kind: "waiting",
        node: node.id,
        reason:
          place.state === "waiting"
            ? `approved; waiting for its wave in rollout ${place.name} (${place.status})`
            : `${place.state} in rollout ${place.name}: re-arm it to install again (kvmstrap fleet rearm ${node.id})`,
      };
    return this.checkAnswer(node);
  }

  /** Merges the node's answer and checks it against its stored report; a failing one holds the node. */
  private async checkAnswer(node: NodeRow): Promise<AnswerOutcome> {
    const name = this.nameOf(node);
    let reasons: string[];
    let text = "";
    try {
      const fleet: Fleet = await readFleetDir(this.o.fleetDir as string);
      const raw = await (await this.opening).latestReport(node.id);
      const parsed = raw === undefined ? undefined : hostReport.safeParse(raw);
      const a = resolveNode(fleet, {
        name,
        rack: this.o.rack ?? node.rack,
        uuid: node.uuid,
        serial: node.serial,
        assetTag: node.assetTag,
        macs: node.macs,
        report: parsed?.success ? parsed.data : null,
      });
      reasons = a.holds.map(formatHold);
      if (a.status === "ready") text = answerYaml(a);
    } catch (e) {
      reasons = [(e as Error).message.split("\n").join("; ")];
    }
    if (reasons.length === 0) {
      this.answers.set(node.id, "ready");
      return { kind: "ready", node: node.id, name, text };
    }
    this.answers.set(node.id, "held");
    const reason = `answer held: ${reasons.join("; ")}`.slice(0, 2000);
    const open = await (await this.opening).holds(node.id);
    if (!open.some((h) => h.source === "answer" && h.reason === reason))
      await (await this.opening).hold(node.id, "answer", reason, this.o.source);
    return { kind: "held", node: node.id, reason };
  }

  // --- the operator's actions ---------------------------------------------------------------------

  /** A node by its id, one of its MACs, or its name. */
  async find(ref: string): Promise<NodeRow | undefined> {
    if (/^\d{1,15}$/.test(ref)) return (await this.opening).node(Number(ref));
    const mac = normalMac(ref);
    if (mac && /^([0-9a-f]{2}[:-]){5}[0-9a-f]{2}$/i.test(ref)) return (await this.opening).nodeByMac(mac);
    for (const [id, name] of this.names) if (name === ref) return (await this.opening).node(id);
    const m = /^node-(\d{1,15})$/.exec(ref);
    return m ? (await this.opening).node(Number(m[1])) : undefined;
  }

  async approve(node: NodeRow, by: string, reason?: string): Promise<FleetNode> {
    await (await this.opening).approve(node.id, by, reason);
    return this.view(node.id);
  }

  async hold(node: NodeRow, by: string, reason: string): Promise<FleetNode> {
    await (await this.opening).hold(node.id, "operator", reason, by);
    return this.view(node.id);
  }

  /** Releases the node's holds and forgets its last answer check (the next fetch checks again). */
  async release(node: NodeRow, by: string): Promise<FleetNode> {
    await (await this.opening).release(node.id, by);
    this.answers.delete(node.id);
    return this.view(node.id);
  }

  /** Stores the node's power settings: what a rollout powers it on with (never put in an event). */
  async setPower(node: NodeRow, settings: PowerSettings): Promise<void> {
    await new RolloutStore(await this.opening, this.o.source).setPower(node.id, settings);
  }

  /** The node's stored power settings, as stored (secrets included: the caller redacts). */
  async power(node: NodeRow): Promise<PowerSettings | undefined> {
    return (await new RolloutStore(await this.opening, this.o.source).power(node.id)) as
      | PowerSettings
      | undefined;
  }

  // --- views --------------------------------------------------------------------------------------

  /** Every node (of a rack, in a state) from one store query, however many there are. */
  async list(filter: { rack?: string; state?: string } = {}): Promise<FleetNode[]> {
    const rows = await (await this.opening).nodeSummaries(filter.rack ? { rack: filter.rack } : {});
    const views = rows.map((r) => this.toView(r));
    return filter.state ? views.filter((v) => v.state === filter.state) : views;
  }

  async view(ref: NodeRow | number): Promise<FleetNode> {
    const id = typeof ref === "number" ? ref : ref.id;
    const [row] = await (await this.opening).nodeSummaries({ id });
    if (!row) throw new Error(`internal: node ${id} vanished`);
    return this.toView(row);
  }

  /** The one mapping of a stored node to its view (the list and a single node alike). */
  private toView({ node, approved, holds, lastEvent: e }: NodeSummary): FleetNode {
    const answer = holds.some((h) => h.source === "answer") ? "held" : (this.answers.get(node.id) ?? "none");
    return {
      id: String(node.id),
      name: this.names.get(node.id) ?? null,
      rack: node.rack,
      macs: node.macs,
      uuid: node.uuid,
      serial: node.serial,
      assetTag: node.assetTag,
      state: holds.length ? "held" : node.state,
      approved,
      held: holds.length > 0,
      holds: holds.map((h) => ({ source: h.source, reason: h.reason, since: h.createdAt.toISOString() })),
      lastEvent: e ? { time: e.time.toISOString(), detail: eventDetail(e.type, e.body) } : null,
      answer,
    };
  }

  async detail(node: NodeRow): Promise<FleetNodeDetail> {
    const [base, events, raw, flags] = await Promise.all([
      this.view(node),
      (await this.opening).nodeEvents(node.id, 500),
      (await this.opening).latestReport(node.id),
      (await this.opening).flags(node.id),
    ]);
    const parsed = raw === undefined ? undefined : hostReport.safeParse(raw);
    return {
      ...base,
      timeline: events
        .filter((e) => e.state !== null)
        .map((e) => ({
          time: e.time.toISOString(),
          state: e.state as string,
          detail: eventDetail(e.type, e.body),
        })),
      report: parsed?.success ? summary(parsed.data) : null,
      flags: flags.map((f) => ({ kind: f.kind, detail: f.detail })),
    };
  }

  /** The name the node's answer layer goes by: its nodes-file name, else node-ID. */
  nameOf(node: NodeRow): string {
    return this.names.get(node.id) ?? `node-${node.id}`;
  }

  // --- following the store ----------------------------------------------------------------------------

  private unfollow: (() => Promise<void>) | undefined;

  /**
   * Calls onNode with the view of every node a committed store event touched: this serve's intake,
   * another rack's serve of the region (LISTEN/NOTIFY), the CLI, the rollout runner. So a dashboard
   * on any serve sees the whole region live. Coalesced: each node is read once per batch however
   * many events it had meanwhile; one read at a time, and a batch of many nodes in one list query, so
   * a busy fleet costs the store a bounded share of its time.
   */
  async follow(onNode: (node: FleetNode) => void): Promise<void> {
    const store = await this.opening;
    const dirty = new Set<number>();
    let reading = false;
    const drain = async () => {
      reading = true;
      try {
        while (dirty.size > 0) {
          if (dirty.size >= FOLLOW_BATCH) {
            // Many nodes at once (a wave reporting): the one-query list costs less than a read each.
            const ids = new Set(dirty);
            dirty.clear();
            for (const row of await store.nodeSummaries().catch(() => []))
              if (ids.has(row.node.id)) onNode(this.toView(row));
            continue;
          }
          const id = dirty.values().next().value as number;
          dirty.delete(id);
          const [row] = await store.nodeSummaries({ id }).catch(() => []);
          if (row) onNode(this.toView(row));
        }
      } finally {
        reading = false;
      }
    };
    this.unfollow = await store.subscribe((events) => {
      for (const e of events) if (e.nodeId !== null) dirty.add(e.nodeId);
      if (!reading && dirty.size > 0) void drain();
    });
  }

  // --- rollouts -----------------------------------------------------------------------------------

  private runner: RolloutRunner | undefined;
  private lease: Lease | undefined;

  /**
   * The rollout runner over this store, started (it resumes an active rollout where it was). With
   * several racks' serves on one PostgreSQL, one runner of the region decides and powers on: the one
   * holding the store's rollout lease (an advisory lock on a session of its own; embedded: always
   * this one). The others serve the rollout routes from the store and write operators' actions to
   * it, which wakes the leader; when the leader dies, one of them takes the lease within seconds and
   * resumes the active rollout from the store.
   */
  async startRollouts(onChange: (rollout: RolloutView) => void): Promise<RolloutRunner> {
    const store = await this.opening;
    const lease = store.lease(ROLLOUT_RUNNER_LEASE);
    this.lease = lease;
    const runner = new RolloutRunner({
      store,
      power: (_id, settings) => powerPort(settings as PowerSettings),
      onChange,
      source: `rollout@${this.o.rack}`,
      leads: () => lease.held,
    });
    this.runner = runner;
    lease.onChange((held) => {
      // Taken (at start, or after the leader died): resume the active rollout from the store.
      if (held) runner.step().catch(() => {});
    });
    await runner.start();
    return runner;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    await this.unfollow?.();
    await this.runner?.stop();
    await this.lease?.close();
    await Promise.allSettled([...this.last.values()]);
    const store = await this.opening.catch(() => undefined);
    await store?.close();
  }
}

function holdText(holds: { source: string; reason: string }[]): string {
  return holds.map((h) => `${h.source}: ${h.reason}`).join("; ");
}

function eventDetail(type: string, body: unknown): string {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.detail === "string") return b.detail;
  if (typeof b.reason === "string") return `${type}: ${b.reason}`;
  return type;
}

function summary(r: HostReport): FleetNodeDetail["report"] {
  const kib = r.memory.totalKiB;
  return {
    cpu: { model: r.cpu.model, sockets: r.cpu.sockets, threads: r.cpu.threads },
    memoryGiB: kib === null ? null : Math.round((kib / 1048576) * 10) / 10,
    nics: r.nics
      .filter((n) => !n.virtual)
      .map((n) => ({ name: n.name, mac: n.mac, driver: n.driver, speedMbps: n.speedMbps })),
    disks: r.disks
      .filter((d) => !d.virtual)
      .map((d) => ({ name: d.name, sizeBytes: d.sizeBytes, model: d.model })),
  };
}
