// The page: counts by state, the nodes that need attention, the node table and the selected node's
// timeline; the same things as the terminal view (dashboard.ts). Written against the DOM by hand:
// rows are kept by MAC and updated in place, so an event costs the cells it changes, and redraws
// are coalesced to at most one per REDRAW_MS however many events arrive. Every text a node or the
// server supplies goes in through textContent, never as markup.
import { formatBytes, seconds } from "../format.js";
import type { NodeState } from "../node-state.js";
import {
  ATTENTION,
  compareNodes,
  type FleetModel,
  failedIn,
  matches,
  REDRAW_MS,
  stateLabel,
  type WebNode,
} from "./model.js";

/** Nodes listed by name under "Needs attention"; the rest are one key away (a: only those in the table). */
const ATTENTION_LISTED = 20;

/**
 * The table's columns. A column the fleet brings (rack, wave) is one more entry here, read off the
 * node; until the server's status carries it, there is none.
 */
const COLUMNS: readonly { title: string; cls: string; value: (n: WebNode, now: number) => string }[] = [
  { title: "", cls: "mark", value: (n) => (ATTENTION.has(n.state) ? "!" : "") },
  { title: "MAC", cls: "mac", value: (n) => n.mac },
  { title: "Name", cls: "name", value: (n) => n.name ?? "" },
  { title: "State", cls: "state", value: (n) => stateLabel(n) },
  { title: "In state", cls: "num", value: (n, now) => ago(now, n.since) },
  { title: "Next boot", cls: "boot", value: (n) => (n.installed ? "local disk" : "network") },
  { title: "Bytes", cls: "num", value: (n) => formatBytes(n.bytes) },
  { title: "Last event", cls: "last", value: (n) => n.lastEvent },
];
const IN_STATE = 4;

interface Row {
  tr: HTMLTableRowElement;
  cells: HTMLTableCellElement[];
  values: string[];
  shown: boolean;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = <K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, cls?: string) => {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
};
const clock = (t: number) => new Date(t).toISOString().slice(11, 19);
/** Time since t; an event stamped a moment after the page's estimate of the server's clock reads 0. */
const ago = (now: number, t: number) => seconds(Math.max(0, now - t));

/** An action the page offers on the selected node (actions.ts): a button in its panel and a key. */
export interface ViewAction {
  id: string;
  label: string;
  key: string;
}

export class DashboardView {
  private readonly rows = new Map<string, Row>();
  /** MACs in table order. */
  private order: string[] = [];
  private readonly dirty = new Set<string>();
  private timer: number | undefined;
  private lastDraw = 0;
  private draws = 0;
  private selected: string | undefined;
  private detailOpen = false;
  private filterText = "";
  private stateFilter: NodeState | "attention" | undefined;
  private painted = false;

  private readonly tbody = $<HTMLTableSectionElement>("rows");
  private readonly detail = $<HTMLElement>("detail");

  constructor(
    private readonly model: FleetModel,
    private readonly actions: readonly ViewAction[],
    /** The operator asked for an action on a node (its button or its key). */
    private readonly onAction: (id: string, mac: string) => void,
  ) {
    const head = $<HTMLTableRowElement>("columns");
    for (const c of COLUMNS) head.append(el("th", c.title, c.cls));
    head.cells[0]?.setAttribute("aria-label", "needs attention");
    this.tbody.addEventListener("click", (e) => {
      const tr = (e.target as HTMLElement).closest("tr");
      if (tr?.dataset.mac) this.select(tr.dataset.mac, true);
    });
    this.tbody.addEventListener("dblclick", () => this.openDetail(true));
    $<HTMLInputElement>("filter").addEventListener("input", (e) => {
      this.filterText = (e.target as HTMLInputElement).value.trim();
      this.applyFilter();
    });
    $<HTMLElement>("counts").addEventListener("click", (e) => {
      const b = (e.target as HTMLElement).closest("button");
      if (!b) return;
      const s = b.dataset.state as NodeState | "attention" | "";
      this.stateFilter = s && this.stateFilter !== s ? s : undefined;
      this.applyFilter();
    });
    $<HTMLElement>("attention-list").addEventListener("click", (e) => {
      const b = (e.target as HTMLElement).closest("button");
      if (b?.dataset.mac) {
        this.select(b.dataset.mac, true);
        this.openDetail(true);
      }
    });
    $<HTMLButtonElement>("detail-close").addEventListener("click", () => this.closeDetail());
    const bar = $<HTMLElement>("detail-actions");
    bar.replaceChildren(
      ...actions.map((a) => {
        const b = el("button", `${a.label} (${a.key})`);
        b.type = "button";
        b.dataset.action = a.id;
        b.setAttribute("aria-keyshortcuts", a.key);
        return b;
      }),
    );
    bar.addEventListener("click", (e) => {
      const id = (e.target as HTMLElement).closest("button")?.dataset.action;
      if (id && this.selected) onAction(id, this.selected);
    });
    document.addEventListener("keydown", (e) => this.onKey(e));
    window.setInterval(() => this.tick(), 1000);
  }

  /** Everything again (after a status load). */
  rebuild(): void {
    this.dirty.clear();
    this.rows.clear();
    const nodes = [...this.model.nodes.values()].sort(compareNodes);
    this.order = nodes.map((n) => n.mac);
    const now = this.model.now();
    const frag = document.createDocumentFragment();
    for (const n of nodes) frag.append(this.makeRow(n, now).tr);
    this.tbody.replaceChildren(frag);
    if (this.selected && !this.rows.has(this.selected)) this.selected = undefined;
    this.selected ??= this.order[0];
    this.markSelected(false);
    this.drawChrome();
    this.applyFilter();
    this.drawDetail();
    this.countDraw();
    if (!this.painted) {
      this.painted = true;
      // After the frame that shows the table: what bench/fleet-dashboard.mjs calls first paint.
      requestAnimationFrame(() =>
        setTimeout(() => {
          performance.mark("kvmstrap:first-paint");
          document.body.dataset.ready = "1";
        }, 0),
      );
    }
  }

  /** A node changed: drawn with the next coalesced redraw. */
  changed(mac: string): void {
    this.dirty.add(mac);
    if (this.timer !== undefined) return;
    const wait = Math.max(0, REDRAW_MS - (performance.now() - this.lastDraw));
    this.timer = window.setTimeout(() => this.flush(), wait);
  }

  setLink(text: string, live: boolean): void {
    const l = $<HTMLElement>("link");
    l.textContent = text;
    l.dataset.live = live ? "1" : "0";
  }

  notice(text: string): void {
    $<HTMLElement>("notice").textContent = text;
  }

  selectedNode(): WebNode | undefined {
    return this.selected ? this.model.nodes.get(this.selected) : undefined;
  }

  private flush(): void {
    this.timer = undefined;
    const now = this.model.now();
    for (const mac of this.dirty) {
      const n = this.model.nodes.get(mac);
      if (!n) continue;
      const row = this.rows.get(mac);
      if (row) this.updateRow(row, n, now);
      else this.insertRow(n, now);
    }
    const selectedDirty = this.selected !== undefined && this.dirty.has(this.selected);
    this.dirty.clear();
    this.selected ??= this.order[0];
    this.drawChrome();
    if (selectedDirty) this.drawDetail();
    this.countDraw();
  }

  private countDraw(): void {
    this.lastDraw = performance.now();
    this.draws += 1;
    document.body.dataset.draws = String(this.draws);
  }

  private makeRow(n: WebNode, now: number): Row {
    const tr = el("tr");
    tr.dataset.mac = n.mac;
    tr.tabIndex = -1;
    const cells = COLUMNS.map((c) => tr.appendChild(el("td", undefined, c.cls)));
    const row: Row = { tr, cells, values: COLUMNS.map(() => ""), shown: true };
    this.rows.set(n.mac, row);
    this.updateRow(row, n, now);
    return row;
  }

  private updateRow(row: Row, n: WebNode, now: number): void {
    for (const [i, c] of COLUMNS.entries()) {
      const v = c.value(n, now);
      if (row.values[i] === v) continue;
      row.values[i] = v;
      const cell = row.cells[i] as HTMLTableCellElement;
      cell.textContent = v;
      if (c.cls === "last") cell.title = v;
    }
    const cls = ATTENTION.has(n.state) ? `problem ${n.state}` : "";
    if (row.tr.className !== cls) row.tr.className = cls;
    row.tr.dataset.state = n.state;
    this.showRow(row, n);
  }

  private insertRow(n: WebNode, now: number): void {
    const row = this.makeRow(n, now);
    // Binary search for its place in table order.
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const other = this.model.nodes.get(this.order[mid] as string);
      if (other && compareNodes(other, n) < 0) lo = mid + 1;
      else hi = mid;
    }
    const before = this.order[lo];
    this.order.splice(lo, 0, n.mac);
    this.tbody.insertBefore(row.tr, before ? (this.rows.get(before)?.tr ?? null) : null);
  }

  private showRow(row: Row, n: WebNode): void {
    const f = this.stateFilter;
    const shown =
      matches(n, this.filterText) &&
      (f === undefined || (f === "attention" ? ATTENTION.has(n.state) : n.state === f));
    if (shown !== row.shown) {
      row.shown = shown;
      row.tr.hidden = !shown;
    }
  }

  private applyFilter(): void {
    for (const mac of this.order) {
      const row = this.rows.get(mac);
      const n = this.model.nodes.get(mac);
      if (row && n) this.showRow(row, n);
    }
    const sel = this.selected ? this.rows.get(this.selected) : undefined;
    if (!sel?.shown) {
      const first = this.order.find((m) => this.rows.get(m)?.shown);
      if (first) this.select(first, false);
    }
    this.drawChrome();
  }

  /** Counts, the attention list, the header line. */
  private drawChrome(): void {
    const total = this.model.nodes.size;
    const v = this.model.version ? ` ${this.model.version}` : "";
    const http = typeof this.model.server.http === "string" ? ` at ${this.model.server.http}` : "";
    // Which rack's serve this is: in a region every serve shows every rack's nodes.
    const rack = typeof this.model.server.rack === "string" ? `, rack ${this.model.server.rack}` : "";
    $<HTMLElement>("server").textContent = `kvmstrap serve${v}${http}${rack}`;

    const counts = this.model.counts();
    const attention = this.model.attention();
    const buttons: HTMLButtonElement[] = [];
    const add = (label: string, state: string, problem: boolean) => {
      const b = el("button", label, problem ? "problem" : undefined);
      b.type = "button";
      b.dataset.state = state;
      b.setAttribute("aria-pressed", String((this.stateFilter ?? "") === state));
      buttons.push(b);
    };
    add(`${total} node${total === 1 ? "" : "s"}`, "", false);
    if (attention.length) add(`${attention.length} need attention`, "attention", true);
    for (const [s, c] of counts) add(`${c} ${s}`, s, ATTENTION.has(s));
    const nav = $<HTMLElement>("counts");
    const sig = buttons.map((b) => `${b.textContent}|${b.getAttribute("aria-pressed")}`).join(",");
    if (nav.dataset.sig !== sig) {
      nav.dataset.sig = sig;
      const focused = (document.activeElement as HTMLElement | null)?.dataset?.state;
      nav.replaceChildren(...buttons);
      if (focused !== undefined && nav.contains(document.activeElement) === false)
        buttons.find((b) => b.dataset.state === focused)?.focus();
    }

    const section = $<HTMLElement>("attention");
    section.hidden = attention.length === 0;
    $<HTMLElement>("attention-count").textContent = String(attention.length);
    const now = this.model.now();
    const items = attention.slice(0, ATTENTION_LISTED).map((n) => {
      const li = el("li");
      const b = el("button", `${n.mac}${n.name ? ` ${n.name}` : ""}`, "node");
      b.type = "button";
      b.dataset.mac = n.mac;
      li.append(b, el("strong", ` ${stateLabel(n)}`), el("span", ` for ${ago(now, n.since)}`));
      const why = n.state === "stalled" ? n.hint : n.lastEvent;
      if (why) li.append(el("div", why, "why"));
      return li;
    });
    if (attention.length > ATTENTION_LISTED)
      items.push(
        el("li", `and ${attention.length - ATTENTION_LISTED} more: press a to show only these in the table`),
      );
    const list = $<HTMLElement>("attention-list");
    const asig = attention
      .slice(0, ATTENTION_LISTED)
      .map((n) => `${n.mac}|${n.state}|${n.since}|${Math.floor((now - n.since) / 1000)}`)
      .join(",");
    if (list.dataset.sig !== asig) {
      list.dataset.sig = asig;
      const focusedMac = (document.activeElement as HTMLElement | null)?.dataset?.mac;
      const inList = list.contains(document.activeElement);
      list.replaceChildren(...items);
      if (inList && focusedMac)
        list.querySelector<HTMLButtonElement>(`button[data-mac="${focusedMac}"]`)?.focus();
    }
    const shown = this.order.reduce((k, m) => k + (this.rows.get(m)?.shown ? 1 : 0), 0);
    $<HTMLElement>("shown").textContent =
      shown === total
        ? `${total} shown`
        : `${shown} of ${total} shown (filtered; Esc in the filter box clears)`;
  }

  private drawDetail(): void {
    const n = this.selectedNode();
    this.detail.hidden = !this.detailOpen || !n;
    if (!this.detailOpen || !n) return;
    const now = this.model.now();
    $<HTMLElement>("detail-title").textContent = `${n.mac}${n.name ? ` (${n.name})` : ""}`;
    const problem = $<HTMLElement>("detail-problem");
    problem.hidden = !ATTENTION.has(n.state);
    if (n.state === "stalled")
      problem.replaceChildren(
        el("strong", `STALLED in ${n.stalledIn ?? "?"} for ${ago(now, n.since)}`),
        el("p", n.hint ?? "no hint for this state"),
      );
    else if (n.state === "failed")
      problem.replaceChildren(el("strong", `FAILED in ${failedIn(n) ?? "?"}`), el("p", n.lastEvent));

    const facts: [string, string][] = [
      ["State", stateLabel(n)],
      ["In state", `${ago(now, n.since)} (since ${clock(n.since)})`],
      ["First seen", `${ago(now, n.firstSeen)} ago`],
      ["Bytes served", formatBytes(n.bytes)],
      ["Next boot", n.installed ? "local disk (installed: boot once until re-armed)" : "network"],
      [
        "Nodes file",
        n.known
          ? n.install
            ? "listed, unattended install"
            : "listed, interactive"
          : "not listed: boots interactively",
      ],
    ];
    $<HTMLElement>("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", k), el("dd", v)]));

    const body = $<HTMLTableSectionElement>("timeline");
    body.replaceChildren(
      ...n.timeline.map((t) => {
        const tr = el(
          "tr",
          undefined,
          t.unexpected ? "unexpected" : t.state === "stalled" || t.state === "failed" ? "problem" : undefined,
        );
        const change = t.unexpected
          ? `? ${t.input} in ${t.from} (unexpected, kept)`
          : t.from === t.state
            ? `${t.state}: ${t.input}`
            : `${t.from} -> ${t.state}`;
        tr.append(
          el("td", clock(t.time), "time"),
          el("td", change),
          el("td", seconds(t.durationMs), "num"),
          el("td", t.detail ?? t.input),
        );
        return tr;
      }),
    );
    $<HTMLElement>("timeline-count").textContent = `${n.timeline.length} entries, oldest first`;
  }

  private tick(): void {
    const now = this.model.now();
    const col = COLUMNS[IN_STATE];
    if (!col) return;
    for (const [mac, row] of this.rows) {
      const n = this.model.nodes.get(mac);
      if (!n) continue;
      const v = col.value(n, now);
      if (row.values[IN_STATE] !== v) {
        row.values[IN_STATE] = v;
        (row.cells[IN_STATE] as HTMLTableCellElement).textContent = v;
      }
    }
    this.drawChrome();
    if (this.detailOpen) this.drawDetail();
  }

  private select(mac: string, focus: boolean): void {
    this.selected = mac;
    this.markSelected(focus);
    this.drawDetail();
  }

  private markSelected(focus: boolean): void {
    const old = this.tbody.querySelector<HTMLTableRowElement>('tr[aria-selected="true"]');
    const row = this.selected ? this.rows.get(this.selected) : undefined;
    if (old && old !== row?.tr) {
      old.removeAttribute("aria-selected");
      old.tabIndex = -1;
    }
    if (!row) return;
    row.tr.setAttribute("aria-selected", "true");
    row.tr.tabIndex = 0;
    if (focus) {
      row.tr.focus({ preventScroll: true });
      row.tr.scrollIntoView({ block: "nearest" });
    }
  }

  private move(delta: number): void {
    const shown = this.order.filter((m) => this.rows.get(m)?.shown);
    if (!shown.length) return;
    const at = this.selected ? shown.indexOf(this.selected) : -1;
    const to = Math.min(shown.length - 1, Math.max(0, at < 0 ? 0 : at + delta));
    this.select(shown[to] as string, true);
  }

  private openDetail(focusTable: boolean): void {
    this.detailOpen = true;
    this.drawDetail();
    if (focusTable) this.markSelected(true);
  }

  private closeDetail(): void {
    this.detailOpen = false;
    this.drawDetail();
    this.markSelected(true);
  }

  private onKey(e: KeyboardEvent): void {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const t = e.target as HTMLElement;
    if (t.closest("dialog")) return;
    // The fleet view (fleet-view.ts) or the login form: the table's keys are not theirs.
    if (document.body.dataset.view === "fleet" || t.closest("#login")) return;
    if (t instanceof HTMLInputElement) {
      if (e.key === "Escape") {
        t.value = "";
        this.filterText = "";
        this.applyFilter();
        this.markSelected(true);
      } else if (e.key === "Enter" || e.key === "ArrowDown") {
        e.preventDefault();
        this.markSelected(true);
      }
      return;
    }
    // Buttons keep Enter and Space for themselves; the table keys work everywhere else.
    const onButton = t instanceof HTMLButtonElement;
    const page = Math.max(
      1,
      Math.floor((this.tbody.parentElement?.parentElement?.clientHeight ?? 600) / 28) - 2,
    );
    const keys: Record<string, () => void> = {
      ArrowDown: () => this.move(1),
      j: () => this.move(1),
      ArrowUp: () => this.move(-1),
      k: () => this.move(-1),
      PageDown: () => this.move(page),
      PageUp: () => this.move(-page),
      Home: () => this.move(-this.order.length),
      End: () => this.move(this.order.length),
      Escape: () => this.closeDetail(),
      "/": () => $<HTMLInputElement>("filter").focus(),
      a: () => {
        this.stateFilter = this.stateFilter === "attention" ? undefined : "attention";
        this.applyFilter();
        this.markSelected(true);
      },
    };
    if (!onButton) keys.Enter = () => (this.detailOpen ? this.closeDetail() : this.openDetail(true));
    const run = keys[e.key];
    if (run) {
      e.preventDefault();
      run();
      return;
    }
    const action = this.actions.find((a) => a.key === e.key);
    if (action && this.selected) {
      e.preventDefault();
      this.onAction(action.id, this.selected);
    }
  }
}
