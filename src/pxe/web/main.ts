// The dashboard's entry (bundled to dist/web/app.js by scripts/bundle-web.mjs): loads the status,
// follows the event stream, and asks for the admin token before an action.
import type { ServeEvent } from "../node-table.js";
import { ACTIONS, adminToken, runAction } from "./actions.js";
import type { FleetEvent } from "./fleet.js";
import { FleetApp } from "./fleet-app.js";
import { FleetModel, type StatusBody } from "./model.js";
import { connectStream } from "./stream.js";
import { DashboardView } from "./view.js";

/**
 * A node first seen through an event has no name yet (the nodes file is the server's): the status is
 * reloaded after a while, longer for a fleet whose status takes long to load, so a thousand nodes
 * arriving at once cost a reload every few seconds, not one per node.
 */
const renameAfter = (loadMs: number) => Math.min(30_000, Math.max(1000, 20 * loadMs));
let lastLoadMs = 0;

const model = new FleetModel();
const view = new DashboardView(model, ACTIONS, (id, mac) => openAction(id, mac));
const fleet = new FleetApp((text) => {
  (document.getElementById("fleet-status") as HTMLElement).textContent = text;
});

/** A status load under way (events wait in the queue), and which one: a newer load supersedes it. */
let loading = false;
let generation = 0;
let queue: ServeEvent[] = [];
let renameTimer: number | undefined;

async function loadStatus(): Promise<void> {
  const mine = ++generation;
  loading = true;
  const started = performance.now();
  queue = [];
  view.setLink("loading the status", false);
  try {
    const res = await fetch("/v1/status", { cache: "no-store" });
    if (!res.ok) throw new Error(`status ${res.status}`);
    const body = (await res.json()) as StatusBody;
    if (mine !== generation) return;
    model.load(body, Date.now());
    // Events that arrived while the status was on its way; those it already holds are skipped.
    for (const e of queue) model.apply(e, true);
    queue = [];
    loading = false;
    view.rebuild();
    lastLoadMs = performance.now() - started;
    view.setLink("live", true);
  } catch {
    if (mine !== generation) return;
    loading = false;
    view.setLink("status not loaded: retrying", false);
    window.setTimeout(() => void loadStatus(), 2000);
  }
}

function onEvent(e: ServeEvent | FleetEvent): void {
  if (e.type === "fleet-node" || e.type === "rollout") {
    fleet.onEvent(e);
    return;
  }
  if (e.type === "warning") view.notice(`server warning: ${e.message}`);
  if (e.type === "stopped") view.setLink("the server stopped: reconnecting", false);
  if (loading) {
    queue.push(e);
    return;
  }
  const before = model.unnamed;
  const mac = model.apply(e);
  if (mac) view.changed(mac);
  if (model.unnamed > before && renameTimer === undefined)
    renameTimer = window.setTimeout(() => {
      renameTimer = undefined;
      void loadStatus();
    }, renameAfter(lastLoadMs));
}

connectStream("/v1/events", {
  hello: () => {
    void loadStatus();
    fleet.reload();
  },
  event: (e) => onEvent(e as ServeEvent | FleetEvent),
  link: (s) => {
    if (s !== "live")
      view.setLink(s === "connecting" ? "connecting" : "connection lost: reconnecting", false);
  },
});

// --- actions: confirm, and the admin token when this tab does not hold it yet --------------------
const dialog = document.getElementById("action-dialog") as HTMLDialogElement;
const form = document.getElementById("action-form") as HTMLFormElement;
const tokenRow = document.getElementById("token-row") as HTMLElement;
const tokenInput = document.getElementById("token") as HTMLInputElement;
const tokenKept = document.getElementById("token-kept") as HTMLElement;
const errorLine = document.getElementById("action-error") as HTMLElement;
const submit = document.getElementById("action-submit") as HTMLButtonElement;
let pending: { id: string; mac: string } | undefined;

function openAction(id: string, mac: string): void {
  const action = ACTIONS.find((a) => a.id === id);
  const node = model.nodes.get(mac);
  if (!action || !node) return;
  pending = { id, mac };
  (document.getElementById("action-title") as HTMLElement).textContent = `${action.label} ${mac}`;
  (document.getElementById("action-text") as HTMLElement).textContent = action.confirm(node);
  submit.textContent = action.label;
  errorLine.textContent = "";
  showTokenField();
  dialog.showModal();
  (adminToken.get() ? submit : tokenInput).focus();
}

function showTokenField(): void {
  const kept = adminToken.get() !== undefined;
  tokenRow.hidden = kept;
  tokenKept.hidden = !kept;
  tokenInput.required = !kept;
  tokenInput.value = "";
}

(document.getElementById("token-forget") as HTMLButtonElement).addEventListener("click", () => {
  adminToken.forget();
  showTokenField();
  tokenInput.focus();
});
(document.getElementById("action-cancel") as HTMLButtonElement).addEventListener("click", () =>
  dialog.close(),
);

form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const p = pending;
  const action = ACTIONS.find((a) => a.id === p?.id);
  const token = adminToken.get() ?? tokenInput.value.trim();
  if (!p || !action) return;
  if (!token) {
    errorLine.textContent = "the admin token is needed (admin.token in the server's state directory)";
    tokenInput.focus();
    return;
  }
  submit.disabled = true;
  const result = await runAction(action, p.mac, token);
  submit.disabled = false;
  if (result.ok) {
    dialog.close();
    (document.getElementById("status-line") as HTMLElement).textContent = result.message;
    return;
  }
  errorLine.textContent = result.message;
  if (result.refused) {
    showTokenField();
    tokenInput.focus();
  }
});
dialog.addEventListener("close", () => {
  tokenInput.value = "";
  pending = undefined;
});
