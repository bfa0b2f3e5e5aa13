// The fleet side of the page (shown once the operator signed in with the admin token): the nodes
// waiting for approval first (nothing installs on them before), the rollout (state, wave, counts,
// why nothing more is chosen, each node's rollout state, pause/resume/abort), and every node grouped
// by rack with counts by state per rack; a node's detail has its timeline, holds with reasons, last
// failure with a log excerpt, and the actions approve, hold and re-arm. Like view.ts: by hand on the
// DOM, a rack's node buttons kept by node and updated in place, redraws coalesced to one per
// REDRAW_MS; all server text through textContent.
import {
  awaitingApproval,
  compareFleetNodes,
  countKey,
  type FleetNode,
  type FleetNodeDetail,
  type FleetState,
  fleetStateLabel,
  lastFailure,
  nodeKey,
  nodeLabel,
  ROLLOUT_ACTIONS,
  type RolloutAction,
  rackOf,
  rolloutAllows,
  rolloutNodesInOrder,
} from "./fleet.js";
import { REDRAW_MS } from "./model.js";

/** Waiting nodes listed with their buttons; the rest are in their rack (a big discovery sweep). */
const WAITING_LISTED = 100;
/** Rollout nodes listed, the ones to look at first (failed, in flight, held). */
const ROLLOUT_LISTED = 200;

export type NodeActionKind = "approve" | "hold" | "rearm";

export interface FleetViewHandlers {
  /** Open a node's detail; `reload`: only fetch it again (the panel is open already: focus stays). */
  openNode: (key: string, reload?: boolean) => void;
  nodeAction: (kind: NodeActionKind, key: string) => void;
  rolloutAction: (action: RolloutAction) => void;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const button = (text: string, data: Record<string, string>, cls?: string) => {
  const b = el("button", text, cls);
  b.type = "button";
  for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
  return b;
};
const clock = (t: string) => (Number.isNaN(Date.parse(t)) ? t : new Date(t).toISOString().slice(11, 19));
const stamp = (t: string) =>
  Number.isNaN(Date.parse(t)) ? t : new Date(t).toISOString().replace("T", " ").slice(0, 19);

interface RackEls {
  details: HTMLDetailsElement;
  summary: HTMLElement;
  grid: HTMLElement;
}

export class FleetView {
  private readonly buttons = new Map<string, { b: HTMLButtonElement; rack: string; text: string }>();
  private readonly racks = new Map<string, RackEls>();
  private readonly dirty = new Set<string>();
  private rolloutDirty = false;
  private timer: number | undefined;
  private lastDraw = 0;
  private detail: FleetNodeDetail | undefined;
  /** The node whose detail is open (its key), also while its detail loads. */
  openKey: string | undefined;

  constructor(
    private readonly state: FleetState,
    private readonly on: FleetViewHandlers,
  ) {
    const root = $<HTMLElement>("fleet");
    root.addEventListener("click", (e) => {
      const b = (e.target as HTMLElement).closest("button");
      if (!b) return;
      const key = b.dataset.node;
      const act = b.dataset.act as NodeActionKind | undefined;
      const ra = b.dataset.rollout as RolloutAction | undefined;
      if (ra) this.on.rolloutAction(ra);
      else if (act && key) this.on.nodeAction(act, key);
      else if (key) this.on.openNode(key);
    });
    $<HTMLButtonElement>("fleet-detail-close").addEventListener("click", () => this.closeDetail());
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.openKey !== undefined) {
        e.preventDefault();
        this.closeDetail();
      }
    });
  }

  /** Everything again (after a load). */
  rebuild(): void {
    this.dirty.clear();
    this.buttons.clear();
    this.racks.clear();
    $<HTMLElement>("rack-list").replaceChildren();
    // Already in order: each goes at its rack's end (no search for its place).
    for (const n of [...this.state.nodes.values()].sort(compareFleetNodes)) this.placeNode(n, true);
    this.drawRackHeads();
    this.drawWaiting();
    this.drawRollout();
    this.drawTitle();
  }

  /** A node changed (its key) or the rollout did ("rollout"): drawn with the next coalesced redraw. */
  changed(what: string): void {
    if (what === "rollout") this.rolloutDirty = true;
    else this.dirty.add(what);
    if (this.timer !== undefined) return;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastDraw));
    this.timer = window.setTimeout(() => this.flush(), wait);
  }

  private flush(): void {
    this.timer = undefined;
    this.lastDraw = performance.now();
    const rollout = this.rolloutDirty;
    this.rolloutDirty = false;
    const keys = rollout ? [...this.state.nodes.keys()] : [...this.dirty];
    let waitingChanged = rollout;
    for (const key of keys) {
      const n = this.state.nodes.get(key);
      if (!n) continue;
      const had = this.buttons.get(key);
      if (this.dirty.has(key)) waitingChanged = true;
      if (had && had.rack === rackOf(n)) this.drawButton(had, n);
      else this.placeNode(n);
    }
    this.dirty.clear();
    this.drawRackHeads();
    if (waitingChanged) this.drawWaiting();
    if (rollout) this.drawRollout();
    this.drawTitle();
    const open = this.openKey;
    if (open !== undefined && this.detail && keys.includes(open)) {
      // The summary the event carried is newer than the loaded detail: redraw from it, then reload.
      const n = this.state.nodes.get(open);
      if (n) this.drawDetail({ ...this.detail, ...n });
      this.on.openNode(open, true);
    }
    document.body.dataset.fleetDraws = String(Number(document.body.dataset.fleetDraws ?? 0) + 1);
  }

  // --- racks ----------------------------------------------------------------------------------------

  private rackEls(rack: string): RackEls {
    let r = this.racks.get(rack);
    if (r) return r;
    const details = el("details", undefined, "rack");
    details.open = true;
    details.dataset.rack = rack;
    const summary = el("summary");
    const grid = el("div", undefined, "rack-nodes");
    details.append(summary, grid);
    r = { details, summary, grid };
    this.racks.set(rack, r);
    // Racks by name, "(no rack)" last: the same order as FleetState.racks().
    const order = this.state.racks().map((s) => s.rack);
    const list = $<HTMLElement>("rack-list");
    const after = order.slice(order.indexOf(rack) + 1).find((x) => this.racks.get(x)?.details.isConnected);
    list.insertBefore(details, after ? (this.racks.get(after)?.details ?? null) : null);
    return r;
  }

  private placeNode(n: FleetNode, last = false): void {
    const key = nodeKey(n);
    const old = this.buttons.get(key);
    old?.b.remove();
    const rack = rackOf(n);
    const entry = old ?? { b: button("", { node: key }, "fleet-node"), rack, text: "" };
    entry.rack = rack;
    this.buttons.set(key, entry);
    this.drawButton(entry, n);
    const grid = this.rackEls(rack).grid;
    // Its place by name among the rack's buttons.
    let before: Element | null = null;
    for (const child of last ? [] : grid.children) {
      const other = this.state.nodes.get((child as HTMLElement).dataset.node ?? "");
      if (other && compareFleetNodes(n, other) < 0) {
        before = child;
        break;
      }
    }
    grid.insertBefore(entry.b, before);
  }

  private drawButton(entry: { b: HTMLButtonElement; text: string }, n: FleetNode): void {
    const ro = this.state.rolloutState(nodeKey(n));
    const label = nodeLabel(n);
    const state = fleetStateLabel(n);
    const rollout = ro ? ` · rollout: ${ro.state}${ro.wave != null ? ` (wave ${ro.wave})` : ""}` : "";
    const text = `${label}|${state}|${rollout}`;
    if (entry.text === text) return;
    entry.text = text;
    entry.b.replaceChildren(el("span", label, "n"), el("span", `${state}${rollout}`, "s"));
    entry.b.dataset.count = countKey(n);
    entry.b.dataset.rolloutState = ro?.state ?? "";
    entry.b.classList.toggle("waiting", awaitingApproval(n));
    entry.b.classList.toggle("held", n.held);
    entry.b.classList.toggle("problem", n.state === "failed" || ro?.state === "failed");
  }

  private drawRackHeads(): void {
    const seen = new Set<string>();
    for (const s of this.state.racks()) {
      seen.add(s.rack);
      const r = this.rackEls(s.rack);
      const counts = s.counts.map(([k, c]) => `${c} ${k}`).join(", ");
      const text = `${s.rack === "(no rack)" ? s.rack : `rack ${s.rack}`}: ${s.total} node${s.total === 1 ? "" : "s"} — ${counts}`;
      if (r.summary.textContent !== text) r.summary.textContent = text;
      r.details.classList.toggle("has-waiting", s.waiting > 0);
    }
    for (const [rack, r] of this.racks)
      if (!seen.has(rack)) {
        r.details.remove();
        this.racks.delete(rack);
      }
  }

  // --- waiting for approval ---------------------------------------------------------------------------

  private drawWaiting(): void {
    const waiting = this.state.waiting();
    $<HTMLElement>("waiting-count").textContent = String(waiting.length);
    $<HTMLElement>("waiting").classList.toggle("none", waiting.length === 0);
    const list = $<HTMLElement>("waiting-list");
    const focused = document.activeElement as HTMLElement | null;
    const refocus =
      focused && list.contains(focused)
        ? { node: focused.dataset.node, act: focused.dataset.act ?? "" }
        : undefined;
    const items = waiting.slice(0, WAITING_LISTED).map((n) => {
      const key = nodeKey(n);
      const li = el("li");
      li.dataset.node = key;
      const facts = [
        // A node without a name is labelled by its MAC: not said twice.
        n.name ? n.macs.join(" ") : n.macs.slice(1).join(" "),
        n.rack ? `rack ${n.rack}` : "no rack",
        n.serial ? `serial ${n.serial}` : "",
        `answer ${n.answer}`,
        n.held ? `HELD: ${n.holds.map((h) => h.reason).join("; ")}` : "",
      ].filter(Boolean);
      li.append(
        button(nodeLabel(n), { node: key }, "node"),
        el("span", ` ${facts.join(" · ")} `, "facts"),
        button("Approve", { node: key, act: "approve" }),
        button("Hold…", { node: key, act: "hold" }),
      );
      return li;
    });
    if (waiting.length === 0) items.push(el("li", "none: every discovered node is approved"));
    if (waiting.length > WAITING_LISTED)
      items.push(el("li", `and ${waiting.length - WAITING_LISTED} more, marked in their racks below`));
    list.replaceChildren(...items);
    if (refocus?.node) {
      const sel = `button[data-node="${CSS.escape(refocus.node)}"]${refocus.act ? `[data-act="${CSS.escape(refocus.act)}"]` : ":not([data-act])"}`;
      (list.querySelector<HTMLButtonElement>(sel) ?? $<HTMLElement>("waiting-h")).focus?.();
    }
  }

  // --- the rollout ----------------------------------------------------------------------------------

  private drawRollout(): void {
    const r = this.state.rollout;
    const summary = $<HTMLElement>("rollout-summary");
    const actions = $<HTMLElement>("rollout-actions");
    const body = $<HTMLTableSectionElement>("rollout-nodes");
    $<HTMLElement>("rollout").dataset.state = r?.state ?? "";
    if (!r) {
      summary.textContent = "No rollout: start one with kvmstrap fleet rollout start.";
      $<HTMLElement>("rollout-counts").textContent = "";
      $<HTMLElement>("rollout-why").textContent = "";
      actions.replaceChildren();
      body.replaceChildren();
      $<HTMLElement>("rollout-table").hidden = true;
      return;
    }
    summary.replaceChildren(
      el("span", `#${r.id} ${r.name}: `),
      el("strong", r.state.toUpperCase(), "rollout-state"),
      el("span", `, wave ${r.wave}`),
    );
    const c = r.counts;
    $<HTMLElement>("rollout-counts").textContent =
      `${c.waiting} waiting · ${c.inFlight} in flight · ${c.verified} verified · ${c.failed} failed · ${c.held} held`;
    $<HTMLElement>("rollout-why").textContent = r.why ? `Nothing more chosen now: ${r.why}` : "";
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.rollout;
    actions.replaceChildren(
      ...ROLLOUT_ACTIONS.map((a) => {
        const b = button(a === "abort" ? "Abort…" : a[0]?.toUpperCase() + a.slice(1), { rollout: a });
        // Offered only where the rollout's transition table takes it (the server would answer 409).
        b.disabled = !rolloutAllows(r.state, a);
        return b;
      }),
    );
    if (focused) {
      const again = actions.querySelector<HTMLButtonElement>(`button[data-rollout="${focused}"]`);
      (again && !again.disabled
        ? again
        : actions.querySelector<HTMLButtonElement>("button:enabled")
      )?.focus();
    }
    $<HTMLElement>("rollout-table").hidden = r.nodes.length === 0;
    const nodes = rolloutNodesInOrder(r);
    const rows = nodes.slice(0, ROLLOUT_LISTED).map((n) => {
      const tr = el("tr", undefined, n.state === "failed" ? "problem" : undefined);
      const name = el("td");
      name.append(button(n.name ?? `node ${n.id}`, { node: String(n.id) }, "node"));
      tr.append(
        name,
        el("td", n.rack ?? ""),
        el("td", n.wave == null ? "" : String(n.wave), "num"),
        el("td", n.state === "failed" ? "FAILED" : n.state, "state"),
        el("td", n.reason ?? ""),
      );
      return tr;
    });
    if (nodes.length > ROLLOUT_LISTED) {
      const tr = el("tr");
      const td = el("td", `and ${nodes.length - ROLLOUT_LISTED} more (waiting or verified)`);
      td.colSpan = 5;
      tr.append(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  private drawTitle(): void {
    const w = this.state.waiting().length;
    const total = this.state.nodes.size;
    $<HTMLElement>("tab-fleet").textContent =
      `Fleet: ${total} node${total === 1 ? "" : "s"}${w ? `, ${w} waiting for approval` : ""}`;
  }

  // --- a node's detail ------------------------------------------------------------------------------

  /** The detail of the open node, as loaded (or undefined while it loads or failed to). */
  showDetail(d: FleetNodeDetail | undefined, error?: string): void {
    this.detail = d;
    const aside = $<HTMLElement>("fleet-detail");
    aside.hidden = this.openKey === undefined;
    if (!d) {
      $<HTMLElement>("fleet-detail-title").textContent = error ?? "loading…";
      for (const id of ["fleet-detail-problem", "fleet-detail-holds-h", "fleet-detail-holds"])
        $<HTMLElement>(id).hidden = true;
      $<HTMLElement>("fleet-detail-facts").replaceChildren();
      const bar = $<HTMLElement>("fleet-detail-actions");
      bar.replaceChildren();
      bar.dataset.sig = "";
      $<HTMLElement>("fleet-timeline").replaceChildren();
      return;
    }
    this.drawDetail(d);
  }

  /** Opens the panel for a node (its detail follows through showDetail); `focus` moves the focus there. */
  open(key: string, focus: boolean): void {
    const fresh = this.openKey !== key;
    this.openKey = key;
    if (fresh) this.showDetail(undefined);
    $<HTMLElement>("fleet-detail").hidden = false;
    if (focus) $<HTMLElement>("fleet-detail-title").focus();
  }

  closeDetail(): void {
    const key = this.openKey;
    this.openKey = undefined;
    this.detail = undefined;
    $<HTMLElement>("fleet-detail").hidden = true;
    if (key) (this.buttons.get(key)?.b ?? $<HTMLElement>("waiting-h")).focus();
  }

  private drawDetail(d: FleetNodeDetail): void {
    const key = nodeKey(d);
    $<HTMLElement>("fleet-detail").dataset.node = key;
    $<HTMLElement>("fleet-detail-title").textContent = `${nodeLabel(d)} (node ${key})`;
    const fail = lastFailure(d);
    const problem = $<HTMLElement>("fleet-detail-problem");
    problem.hidden = !fail;
    if (fail) {
      const parts: HTMLElement[] = [
        el("strong", `Last failure${fail.state ? ` in ${fail.state}` : ""} at ${stamp(fail.time)}`),
        el("p", fail.detail),
      ];
      if (fail.log) {
        parts.push(el("p", "Log excerpt:", "muted"));
        parts.push(el("pre", fail.log, "log"));
      }
      problem.replaceChildren(...parts);
    }
    const ro = this.state.rolloutState(key);
    const facts: [string, string][] = [
      ["State", fleetStateLabel(d)],
      ["Approved", d.approved ? "yes" : "no: waiting for approval (nothing installs before)"],
      ["Rack", d.rack ?? "none"],
      ["MACs", d.macs.join(", ")],
      ["DMI UUID", d.uuid ?? "unknown"],
      ["Serial", d.serial ?? "unknown"],
      ["Asset tag", d.assetTag ?? ""],
      ["Answer", d.answer],
      [
        "Rollout",
        ro
          ? `${ro.state}${ro.wave != null ? `, wave ${ro.wave}` : ""}${ro.reason ? `: ${ro.reason}` : ""}`
          : "not in the current rollout",
      ],
      ["Last event", d.lastEvent ? `${stamp(d.lastEvent.time)} ${d.lastEvent.detail}` : "none"],
    ];
    if (d.report)
      facts.push([
        "Hardware",
        [
          d.report.cpu?.model ?? "",
          d.report.memoryGiB != null ? `${d.report.memoryGiB} GiB` : "",
          Array.isArray(d.report.nics) ? `${d.report.nics.length} NICs` : "",
          Array.isArray(d.report.disks) ? `${d.report.disks.length} disks` : "",
        ]
          .filter(Boolean)
          .join(", ") || "reported",
      ]);
    if (d.flags.length) facts.push(["Identity flags", d.flags.map((f) => flagText(f)).join("; ")]);
    $<HTMLElement>("fleet-detail-facts").replaceChildren(
      ...facts.filter(([, v]) => v !== "").flatMap(([k, v]) => [el("dt", k), el("dd", v)]),
    );

    const holds = $<HTMLElement>("fleet-detail-holds");
    $<HTMLElement>("fleet-detail-holds-h").hidden = d.holds.length === 0;
    holds.hidden = d.holds.length === 0;
    holds.replaceChildren(
      ...d.holds.map((h) => {
        const li = el("li");
        li.append(
          el("strong", `${h.source}: `),
          el("span", h.reason, "reason"),
          el("small", ` since ${stamp(h.since)}`),
        );
        return li;
      }),
    );

    const bar = $<HTMLElement>("fleet-detail-actions");
    const focused = (document.activeElement as HTMLElement | null)?.dataset?.act;
    const buttons: HTMLButtonElement[] = [];
    if (!d.approved) buttons.push(button("Approve", { node: key, act: "approve" }));
    buttons.push(button("Hold…", { node: key, act: "hold" }));
    buttons.push(button(d.holds.length ? "Re-arm (release holds)" : "Re-arm", { node: key, act: "rearm" }));
    if (bar.dataset.sig !== buttons.map((b) => b.textContent).join("|")) {
      bar.dataset.sig = buttons.map((b) => b.textContent).join("|");
      bar.replaceChildren(...buttons);
      if (focused) (bar.querySelector<HTMLButtonElement>(`[data-act="${focused}"]`) ?? buttons[0])?.focus();
    }

    $<HTMLElement>("fleet-timeline").replaceChildren(
      ...d.timeline.map((t) => {
        const tr = el("tr", undefined, t.state === "failed" || t.state === "stalled" ? "problem" : undefined);
        tr.append(el("td", clock(t.time), "time"), el("td", t.state), el("td", t.detail ?? ""));
        return tr;
      }),
    );
    $<HTMLElement>("fleet-timeline-count").textContent = `${d.timeline.length} entries, oldest first`;
  }
}

function flagText(f: unknown): string {
  if (f && typeof f === "object") {
    const o = f as { kind?: unknown; detail?: unknown };
    return [o.kind, o.detail].filter((x) => typeof x === "string").join(": ");
  }
  return String(f);
}
