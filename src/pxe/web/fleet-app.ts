// The fleet side's behaviour: the login form (the admin token, asked once per tab), loading the
// fleet (GET /v1/fleet/nodes and the current rollout), following its events, a node's detail, and
// the actions: approve, hold (with a reason), re-arm, and the rollout's pause, resume and abort.
// Without a token the page is the boot-chain table of GET /v1/status, as before.
import { adminToken } from "./actions.js";
import { api, onTokenRefused, seg, TOKEN_REFUSED } from "./api.js";
import {
  type FleetEvent,
  type FleetNode,
  type FleetNodeDetail,
  FleetState,
  nodeLabel,
  type Rollout,
  type RolloutAction,
} from "./fleet.js";
import { FleetView, type NodeActionKind } from "./fleet-view.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

interface DialogSpec {
  title: string;
  text: string;
  /** The reason field: required (hold), optional (approve) or absent. */
  reason: "required" | "optional" | "none";
  submit: string;
  run: (reason: string) => Promise<string | undefined>;
}

const NODE_ACTIONS: Record<
  NodeActionKind,
  { label: string; reason: DialogSpec["reason"]; text: (n: FleetNode) => string }
> = {
  approve: {
    label: "Approve",
    reason: "optional",
    text: (n) =>
      `Approve ${nodeLabel(n)}: from now on a rollout may install it, overwriting its disks. Its answer: ${n.answer}.`,
  },
  hold: {
    label: "Hold",
    reason: "required",
    text: (n) => `Hold ${nodeLabel(n)}: nothing installs on it until the hold is released (re-arm). Say why.`,
  },
  rearm: {
    label: "Re-arm",
    reason: "none",
    text: (n) =>
      `Re-arm ${nodeLabel(n)}: releases the holds the operator set and, if it is installed or failed, installs it again on its next network boot.`,
  },
};

export class FleetApp {
  readonly state = new FleetState();
  readonly view: FleetView;
  private loading = false;
  private generation = 0;
  private queue: FleetEvent[] = [];
  private detailGeneration = 0;
  /** A detail request is under way; another update of that node came meanwhile. */
  private detailLoading = false;
  private detailAgain = false;
  private dialogSpec: DialogSpec | undefined;

  private readonly loginForm = $<HTMLFormElement>("login");
  private readonly loginToken = $<HTMLInputElement>("login-token");
  private readonly loginError = $<HTMLElement>("login-error");
  private readonly dialog = $<HTMLDialogElement>("fleet-dialog");
  private readonly reasonRow = $<HTMLElement>("fleet-reason-row");
  private readonly reason = $<HTMLInputElement>("fleet-reason");
  private readonly dialogError = $<HTMLElement>("fleet-dialog-error");
  private readonly dialogSubmit = $<HTMLButtonElement>("fleet-dialog-submit");

  constructor(private readonly say: (text: string) => void) {
    this.view = new FleetView(this.state, {
      openNode: (key, reload) => this.openNode(key, !reload),
      nodeAction: (kind, key) => this.nodeAction(kind, key),
      rolloutAction: (a) => this.rolloutAction(a),
    });
    this.loginForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.signIn(this.loginToken.value.trim());
    });
    $<HTMLButtonElement>("sign-out").addEventListener("click", () => {
      adminToken.forget();
      this.signedOut("");
      this.loginToken.focus();
    });
    $<HTMLButtonElement>("tab-fleet").addEventListener("click", () => this.show("fleet"));
    $<HTMLButtonElement>("tab-boot").addEventListener("click", () => this.show("boot"));
    onTokenRefused(() => this.signedOut(`${TOKEN_REFUSED}: sign in again with the admin token`));
    $<HTMLFormElement>("fleet-form").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.submitDialog();
    });
    $<HTMLButtonElement>("fleet-dialog-cancel").addEventListener("click", () => this.dialog.close());
    this.dialog.addEventListener("close", () => {
      this.dialogSpec = undefined;
      this.reason.value = "";
    });
    if (adminToken.get()) {
      // Signed in earlier in this tab (a reload): the fleet view, loaded on the stream's hello.
      this.signedIn();
      this.show("fleet");
    } else this.signedOut("");
  }

  /** The stream (re)connected: the fleet is loaded again, if this tab is signed in. */
  reload(): void {
    if (adminToken.get() && document.body.dataset.signedIn === "1") void this.load();
  }

  onEvent(e: FleetEvent): void {
    if (!this.state.loaded && !this.loading) return;
    if (this.loading) {
      this.queue.push(e);
      return;
    }
    const what = this.state.apply(e);
    if (what) this.view.changed(what);
  }

  // --- signing in ---------------------------------------------------------------------------------

  private async signIn(token: string): Promise<void> {
    if (!token) {
      this.loginError.textContent = "the admin token is needed (admin.token in the server's state directory)";
      this.loginToken.focus();
      return;
    }
    this.loginError.textContent = "checking…";
    const ok = await this.load(token);
    if (!ok) return;
    adminToken.set(token);
    this.loginToken.value = "";
    this.signedIn();
    this.show("fleet");
    $<HTMLElement>("waiting-h").focus();
  }

  private signedIn(): void {
    document.body.dataset.signedIn = "1";
    this.loginForm.hidden = true;
    $<HTMLElement>("signed-in").hidden = false;
    $<HTMLElement>("tabs").hidden = false;
    this.loginError.textContent = "";
  }

  private signedOut(message: string): void {
    document.body.dataset.signedIn = "0";
    this.loginForm.hidden = false;
    $<HTMLElement>("signed-in").hidden = true;
    $<HTMLElement>("tabs").hidden = true;
    this.loginError.textContent = message;
    this.state.load([], null);
    this.state.loaded = false;
    this.show("boot");
  }

  private show(view: "fleet" | "boot"): void {
    const fleet = view === "fleet" && document.body.dataset.signedIn === "1";
    document.body.dataset.view = fleet ? "fleet" : "boot";
    $<HTMLElement>("fleet").hidden = !fleet;
    $<HTMLButtonElement>("tab-fleet").setAttribute("aria-pressed", String(fleet));
    $<HTMLButtonElement>("tab-boot").setAttribute("aria-pressed", String(!fleet));
  }

  /** Loads the fleet with `token` (the kept one by default); false when it could not. */
  private async load(token = adminToken.get()): Promise<boolean> {
    const mine = ++this.generation;
    this.loading = true;
    this.queue = [];
    performance.mark("kvmstrap:fleet-load");
    const nodes = await api<{ nodes: FleetNode[] }>("GET", "/v1/fleet/nodes", undefined, token);
    const rollout = nodes.ok
      ? await api<Rollout>("GET", "/v1/fleet/rollouts/current", undefined, token)
      : undefined;
    if (mine !== this.generation) return false;
    this.loading = false;
    performance.mark("kvmstrap:fleet-fetched");
    if (!nodes.ok) {
      this.queue = [];
      if (nodes.refused) this.loginError.textContent = TOKEN_REFUSED;
      else if (nodes.status === 404)
        this.loginError.textContent = "this server has no fleet (its /v1/fleet routes answer 404)";
      else this.loginError.textContent = `the fleet did not load: ${nodes.message}`;
      return false;
    }
    this.state.load(nodes.body.nodes, rollout?.ok ? rollout.body : null);
    for (const e of this.queue) this.state.apply(e);
    this.queue = [];
    this.view.rebuild();
    // After the frame that shows it: what bench/fleet-dashboard.mjs calls the fleet view's paint.
    requestAnimationFrame(() =>
      setTimeout(() => {
        performance.mark("kvmstrap:fleet-painted");
        document.body.dataset.fleetReady = "1";
      }, 0),
    );
    if (this.view.openKey !== undefined) this.openNode(this.view.openKey, false);
    return true;
  }

  // --- a node ---------------------------------------------------------------------------------------

  /**
   * Opens a node's detail, or (`focus` false, the same node) loads it again. Reloads are coalesced:
   * a node sending many updates a second costs one request at a time, plus one after it.
   */
  private openNode(key: string, focus = true): void {
    const reload = !focus && this.view.openKey === key;
    if (reload && this.detailLoading) {
      this.detailAgain = true;
      return;
    }
    const mine = ++this.detailGeneration;
    this.detailLoading = true;
    this.detailAgain = false;
    this.view.open(key, focus);
    void api<FleetNodeDetail>("GET", `/v1/fleet/nodes/${seg(key)}`).then((r) => {
      if (mine !== this.detailGeneration) return; // a newer request owns detailLoading
      this.detailLoading = false;
      if (this.view.openKey !== key) return;
      if (r.ok) this.view.showDetail(r.body);
      else this.view.showDetail(undefined, `node ${key}: ${r.message}`);
      if (r.ok && this.detailAgain) this.openNode(key, false);
    });
  }

  private nodeAction(kind: NodeActionKind, key: string): void {
    const n = this.state.nodes.get(key);
    if (!n) return;
    const a = NODE_ACTIONS[kind];
    this.openDialog({
      title: `${a.label} ${nodeLabel(n)}`,
      text: a.text(n),
      reason: a.reason,
      submit: a.label,
      run: async (reason) => {
        const body = reason ? { reason } : {};
        const r = await api<FleetNode>("POST", `/v1/fleet/nodes/${seg(key)}/${kind}`, body);
        if (!r.ok) return `${a.label} ${r.refused ? "refused" : "failed"}: ${r.message}`;
        // The answer is the node as it is now; its event follows on the stream (and changes nothing more).
        this.onEvent({ type: "fleet-node", node: r.body });
        this.say(
          `${a.label}: ${nodeLabel(r.body)} is now ${r.body.approved ? "approved" : "not approved"}${r.body.held ? ", held" : ""}`,
        );
        return undefined;
      },
    });
  }

  // --- the rollout ----------------------------------------------------------------------------------

  private rolloutAction(action: RolloutAction): void {
    const r = this.state.rollout;
    if (!r) return;
    const run = async () => {
      const res = await api<Rollout>("POST", `/v1/fleet/rollouts/${seg(r.id)}/${action}`, {});
      if (!res.ok) return `${action} ${res.refused ? "refused" : "failed"}: ${res.message}`;
      this.onEvent({ type: "rollout", rollout: res.body });
      this.say(`rollout ${res.body.name}: ${res.body.state}`);
      return undefined;
    };
    if (action === "abort") {
      this.openDialog({
        title: `Abort rollout ${r.name}`,
        text: "Nothing more is powered on; nodes already installing finish on their own. An aborted rollout cannot be resumed.",
        reason: "none",
        submit: "Abort",
        run,
      });
      return;
    }
    void run().then((err) => {
      if (err) this.say(err);
    });
  }

  // --- the confirm dialog -------------------------------------------------------------------------

  private openDialog(spec: DialogSpec): void {
    this.dialogSpec = spec;
    $<HTMLElement>("fleet-dialog-title").textContent = spec.title;
    $<HTMLElement>("fleet-dialog-text").textContent = spec.text;
    this.reasonRow.hidden = spec.reason === "none";
    this.reason.setAttribute("aria-required", String(spec.reason === "required"));
    this.reason.value = "";
    $<HTMLElement>("fleet-reason-label").textContent =
      spec.reason === "required" ? "Reason (required)" : "Reason (optional)";
    this.dialogError.textContent = "";
    this.dialogSubmit.textContent = spec.submit;
    this.dialogSubmit.disabled = false;
    this.dialog.showModal();
    (spec.reason === "none" ? this.dialogSubmit : this.reason).focus();
  }

  private async submitDialog(): Promise<void> {
    const spec = this.dialogSpec;
    if (!spec) return;
    const reason = this.reason.value.trim();
    if (spec.reason === "required" && !reason) {
      this.dialogError.textContent = "a reason is required: it is shown with the hold";
      this.reason.focus();
      return;
    }
    this.dialogSubmit.disabled = true;
    const err = await spec.run(spec.reason === "none" ? "" : reason);
    this.dialogSubmit.disabled = false;
    if (err) {
      this.dialogError.textContent = err;
      this.say(err);
      return;
    }
    this.dialog.close();
  }
}
