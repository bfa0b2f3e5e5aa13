// The fleet side of the page (shown once the operator signed in with the admin token): the nodes
// waiting for approval first (nothing installs on them before), the rollout (state, wave, counts,
// why nothing more is chosen, each node's rollout state, pause/resume/abort), and every node grouped
// by rack with counts by state per rack; a node's detail has its timeline, holds with reasons, last
// failure with a log excerpt, and the actions approve, hold and re-arm. Like view.ts: by hand on the
// DOM, redraws coalesced to one per REDRAW_MS; all server text through textContent.
//
// What an operator clicks is kept, not rebuilt: a node's live updates arrive many times a second
// (a waiting node polling its answer, a node installing), and a button replaced between the pointer
// (or a test's locator) finding it and the click makes the click land on a detached element. So the
// rack buttons, the waiting list's items, the rollout's rows and buttons, and the detail's action
// bar are kept by key and patched; a part is redrawn only when its signature (dataset.sig: the text
// it shows) changed, and the focus stays where it was.
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
/**
 * Keeps `parent`'s children in the order of `items`: a child whose signature is unchanged is kept as
 * it is (the same element: a pointer or the focus on it stays valid), a changed one is rebuilt in its
 * place (the focus moved to its like in the new one), others are removed.
 */
function syncChildren(
  parent: HTMLElement,
  items: { key: string; sig: string; make: () => HTMLElement }[],
): void {
  const focused = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const old = new Map<string, HTMLElement>();
  for (const c of [...parent.children] as HTMLElement[])
    if (c.dataset.key !== undefined && !old.has(c.dataset.key)) old.set(c.dataset.key, c);
    else c.remove();
  let refocus: HTMLElement | null = null;
  let at = parent.firstElementChild;
  for (const it of items) {
    let e = old.get(it.key);
    old.delete(it.key);
    if (!e || e.dataset.sig !== it.sig) {
      const fresh = it.make();
      fresh.dataset.key = it.key;
      fresh.dataset.sig = it.sig;
      if (e) {
        if (focused && e.contains(focused)) refocus = likeIn(fresh, focused);
        if (e === at) at = fresh;
        e.replaceWith(fresh);
      }
      e = fresh;
    }
    if (e === at) at = e.nextElementSibling;
    else parent.insertBefore(e, at);
  }
  for (const e of old.values()) e.remove();
  // A kept element that moved lost the focus on the way (removed and inserted again): given back.
  const back = refocus ?? (focused?.isConnected ? focused : null);
  if (back && document.activeElement !== back && (refocus || parent.contains(back)))
    back.focus({ preventScroll: true });
}

/** The element in `root` that does what `like` did (same node and action), else its first button. */
function likeIn(root: HTMLElement, like: HTMLElement): HTMLElement | null {
  const { node, act, rollout } = like.dataset;
  const sel = [
    "button",
    node !== undefined ? `[data-node="${CSS.escape(node)}"]` : "",
    act !== undefined ? `[data-act="${CSS.escape(act)}"]` : ":not([data-act])",
    rollout !== undefined ? `[data-rollout="${CSS.escape(rollout)}"]` : "",
  ].join("");
  return root.querySelector<HTMLElement>(sel) ?? root.querySelector<HTMLElement>("button");
}

/** Sets a text only when it differs (no mutation, no layout work for the same words). */
function setText(e: HTMLElement, text: string): void {
  if (e.textContent !== text) e.textContent = text;
}

/** Runs `draw` only when `sig` differs from what `e` shows now. */
function drawIf(e: HTMLElement, sig: string, draw: () => void): void {
  if (e.dataset.sig === sig) return;
  draw();
  e.dataset.sig = sig;
}

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
  /** The rows the detail's timeline shows (time, state, detail), to append only what is new. */
  private timelineSigs: string[] = [];
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
    const open = this.openKey;
    const openChanged = open !== undefined && this.dirty.has(open);
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
    if (open !== undefined && this.detail && (openChanged || rollout)) {
      // The summary the event carried is newer than the loaded detail: redrawn from it (only what
      // changed), then reloaded. A rollout change only moves its "Rollout" line: no reload.
      const n = this.state.nodes.get(open);
      if (n) this.drawDetail({ ...this.detail, ...n });
      if (openChanged) this.on.openNode(open, true);
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
    const focused = document.activeElement;
    const hadFocus = focused instanceof HTMLElement && list.contains(focused);
    const items = waiting.slice(0, WAITING_LISTED).map((n) => {
      const key = nodeKey(n);
      const label = nodeLabel(n);
      const facts = [
        // A node without a name is labelled by its MAC: not said twice.
        n.name ? n.macs.join(" ") : n.macs.slice(1).join(" "),
        n.rack ? `rack ${n.rack}` : "no rack",
        n.serial ? `serial ${n.serial}` : "",
        `answer ${n.answer}`,
        n.held ? `HELD: ${n.holds.map((h) => h.reason).join("; ")}` : "",
      ].filter(Boolean);
      const text = ` ${facts.join(" · ")} `;
      return {
        key: `node:${key}`,
        sig: `${label}|${text}`,
        make: () => {
          const li = el("li");
          li.dataset.node = key;
          li.append(
            button(label, { node: key }, "node"),
            el("span", text, "facts"),
            button("Approve", { node: key, act: "approve" }),
            button("Hold…", { node: key, act: "hold" }),
          );
          return li;
        },
      };
    });
    if (waiting.length === 0)
      items.push({ key: "none", sig: "", make: () => el("li", "none: every discovered node is approved") });
    if (waiting.length > WAITING_LISTED) {
      const more = `and ${waiting.length - WAITING_LISTED} more, marked in their racks below`;
      items.push({ key: "more", sig: more, make: () => el("li", more) });
    }
    syncChildren(list, items);
    // The focused node left the list (approved): the focus goes to the list's heading.
    if (hadFocus && !focused.isConnected) $<HTMLElement>("waiting-h").focus();
  }

  // --- the rollout ----------------------------------------------------------------------------------

  private drawRollout(): void {
    const r = this.state.rollout;
    const summary = $<HTMLElement>("rollout-summary");
    const actions = $<HTMLElement>("rollout-actions");
    const body = $<HTMLTableSectionElement>("rollout-nodes");
    $<HTMLElement>("rollout").dataset.state = r?.state ?? "";
    actions.hidden = !r;
    if (!r) {
      summary.textContent = "No rollout: start one with kvmstrap fleet rollout start.";
      summary.dataset.sig = "";
      $<HTMLElement>("rollout-counts").textContent = "";
      $<HTMLElement>("rollout-why").textContent = "";
      body.replaceChildren();
      $<HTMLElement>("rollout-table").hidden = true;
      return;
    }
    drawIf(summary, `${r.id}|${r.name}|${r.state}|${r.wave}`, () =>
      summary.replaceChildren(
        el("span", `#${r.id} ${r.name}: `),
        el("strong", r.state.toUpperCase(), "rollout-state"),
        el("span", `, wave ${r.wave}`),
      ),
    );
    const c = r.counts;
    setText(
      $<HTMLElement>("rollout-counts"),
      `${c.waiting} waiting · ${c.inFlight} in flight · ${c.verified} verified · ${c.failed} failed · ${c.held} held`,
    );
    setText($<HTMLElement>("rollout-why"), r.why ? `Nothing more chosen now: ${r.why}` : "");
    // The three buttons are made once and kept; each enabled only where the rollout's transition
    // table takes it (the server would answer 409).
    if (actions.children.length !== ROLLOUT_ACTIONS.length)
      actions.replaceChildren(
        ...ROLLOUT_ACTIONS.map((a) =>
          button(a === "abort" ? "Abort…" : a[0]?.toUpperCase() + a.slice(1), { rollout: a }),
        ),
      );
    const focused = document.activeElement;
    for (const b of actions.querySelectorAll<HTMLButtonElement>("button"))
      b.disabled = !rolloutAllows(r.state, b.dataset.rollout as RolloutAction);
    // The focused one was just disabled (pause pressed): the focus goes to the one now enabled.
    if (focused instanceof HTMLButtonElement && actions.contains(focused) && focused.disabled)
      actions.querySelector<HTMLButtonElement>("button:enabled")?.focus();
    $<HTMLElement>("rollout-table").hidden = r.nodes.length === 0;
    const nodes = rolloutNodesInOrder(r);
    const rows = nodes.slice(0, ROLLOUT_LISTED).map((n) => {
      const cells = [n.rack ?? "", n.wave == null ? "" : String(n.wave), n.state, n.reason ?? ""];
      const label = n.name ?? `node ${n.id}`;
      return {
        key: `node:${n.id}`,
        sig: [label, ...cells].join("|"),
        make: () => {
          const tr = el("tr", undefined, n.state === "failed" ? "problem" : undefined);
          const name = el("td");
          name.append(button(label, { node: String(n.id) }, "node"));
          tr.append(
            name,
            el("td", cells[0]),
            el("td", cells[1], "num"),
            el("td", n.state === "failed" ? "FAILED" : n.state, "state"),
            el("td", cells[3]),
          );
          return tr;
        },
      };
    });
    if (nodes.length > ROLLOUT_LISTED) {
      const more = `and ${nodes.length - ROLLOUT_LISTED} more (waiting or verified)`;
      rows.push({
        key: "more",
        sig: more,
        make: () => {
          const tr = el("tr");
          const td = el("td", more);
          td.colSpan = 5;
          tr.append(td);
          return tr;
        },
      });
    }
    syncChildren(body, rows);
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
      setText($<HTMLElement>("fleet-detail-title"), error ?? "loading…");
      for (const id of ["fleet-detail-problem", "fleet-detail-holds-h", "fleet-detail-holds"])
        $<HTMLElement>(id).hidden = true;
      for (const id of ["fleet-detail-problem", "fleet-detail-facts", "fleet-detail-holds"]) {
        $<HTMLElement>(id).replaceChildren();
        $<HTMLElement>(id).dataset.sig = "";
      }
      // Kept, only out of reach until the node is known (an action needs the node's state).
      $<HTMLElement>("fleet-detail-actions").hidden = true;
      $<HTMLElement>("fleet-timeline").replaceChildren();
      this.timelineSigs = [];
      setText($<HTMLElement>("fleet-timeline-count"), "");
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

  /** The detail's action buttons: made once, kept for every node the panel shows (see the top). */
  private detailActions(): Record<NodeActionKind, HTMLButtonElement> {
    const bar = $<HTMLElement>("fleet-detail-actions");
    const made = (act: NodeActionKind) => bar.querySelector<HTMLButtonElement>(`button[data-act="${act}"]`);
    const approve = made("approve");
    const hold = made("hold");
    const rearm = made("rearm");
    if (approve && hold && rearm) return { approve, hold, rearm };
    const out = {
      approve: button("Approve", { act: "approve" }),
      hold: button("Hold…", { act: "hold" }),
      rearm: button("Re-arm", { act: "rearm" }),
    };
    bar.replaceChildren(out.approve, out.hold, out.rearm);
    return out;
  }

  private drawDetail(d: FleetNodeDetail): void {
    const key = nodeKey(d);
    $<HTMLElement>("fleet-detail").dataset.node = key;
    setText($<HTMLElement>("fleet-detail-title"), `${nodeLabel(d)} (node ${key})`);

    const bar = $<HTMLElement>("fleet-detail-actions");
    const acts = this.detailActions();
    const focused = document.activeElement;
    for (const b of Object.values(acts)) if (b.dataset.node !== key) b.dataset.node = key;
    acts.approve.hidden = d.approved;
    setText(acts.rearm, d.holds.length ? "Re-arm (release holds)" : "Re-arm");
    bar.hidden = false;
    // Approve was focused and is gone (approved): the focus goes to the next action.
    if (focused === acts.approve && acts.approve.hidden) acts.hold.focus();

    const fail = lastFailure(d);
    const problem = $<HTMLElement>("fleet-detail-problem");
    problem.hidden = !fail;
    drawIf(problem, fail ? JSON.stringify(fail) : "", () => {
      if (!fail) return problem.replaceChildren();
      const parts: HTMLElement[] = [
        el("strong", `Last failure${fail.state ? ` in ${fail.state}` : ""} at ${stamp(fail.time)}`),
        el("p", fail.detail),
      ];
      if (fail.log) {
        parts.push(el("p", "Log excerpt:", "muted"));
        parts.push(el("pre", fail.log, "log"));
      }
      problem.replaceChildren(...parts);
    });
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
    const shown = facts.filter(([, v]) => v !== "");
    const dl = $<HTMLElement>("fleet-detail-facts");
    drawIf(dl, JSON.stringify(shown), () =>
      dl.replaceChildren(...shown.flatMap(([k, v]) => [el("dt", k), el("dd", v)])),
    );

    const holds = $<HTMLElement>("fleet-detail-holds");
    $<HTMLElement>("fleet-detail-holds-h").hidden = d.holds.length === 0;
    holds.hidden = d.holds.length === 0;
    drawIf(holds, JSON.stringify(d.holds), () =>
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
      ),
    );

    // The timeline grows at its end: rows already shown are kept, new ones appended.
    const rows = d.timeline.map((t) => `${t.time}|${t.state}|${t.detail ?? ""}`);
    const tbody = $<HTMLElement>("fleet-timeline");
    const same = this.timelineSigs.length <= rows.length && this.timelineSigs.every((r, i) => r === rows[i]);
    if (!same) tbody.replaceChildren();
    tbody.append(
      ...d.timeline.slice(same ? this.timelineSigs.length : 0).map((t) => {
        const tr = el("tr", undefined, t.state === "failed" || t.state === "stalled" ? "problem" : undefined);
        tr.append(el("td", clock(t.time), "time"), el("td", t.state), el("td", t.detail ?? ""));
        return tr;
      }),
    );
    this.timelineSigs = rows;
    setText($<HTMLElement>("fleet-timeline-count"), `${d.timeline.length} entries, oldest first`);
  }
}

function flagText(f: unknown): string {
  if (f && typeof f === "object") {
    const o = f as { kind?: unknown; detail?: unknown };
    return [o.kind, o.detail].filter((x) => typeof x === "string").join(": ");
  }
  return String(f);
}
