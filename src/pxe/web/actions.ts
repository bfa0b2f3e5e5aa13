// Operator actions on a node, sent with the admin token as a Bearer header. The token is what
// `kvmstrap serve` keeps in STATE/admin.token; the page asks for it once per tab and keeps it in
// sessionStorage (gone when the tab closes), never in a URL, a cookie or the console.
import type { WebNode } from "./model.js";

export interface NodeAction {
  id: string;
  label: string;
  /** The key that starts it on the selected node. */
  key: string;
  /** What it will do, asked before it is sent. */
  confirm: (n: WebNode) => string;
  path: (mac: string) => string;
}

/**
 * The actions the server offers today. Approve, hold and abort join this list when the fleet's API
 * (src/fleet, issue 11) is served by `kvmstrap serve`; the page offers nothing the server cannot do.
 */
export const ACTIONS: readonly NodeAction[] = [
  {
    id: "rearm",
    label: "Re-arm",
    key: "r",
    confirm: (n) =>
      `Re-arm ${n.mac}${n.name ? ` (${n.name})` : ""}: its next network boot installs again, overwriting its disk${
        n.installed ? "" : " (it is not marked installed now: this only clears boot once if it gets there)"
      }.`,
    path: (mac) => `/v1/nodes/${encodeURIComponent(mac)}/rearm`,
  },
];

const TOKEN_KEY = "kvmstrap.adminToken";

export const adminToken = {
  get: (): string | undefined => sessionStorage.getItem(TOKEN_KEY) ?? undefined,
  set: (token: string) => sessionStorage.setItem(TOKEN_KEY, token),
  forget: () => sessionStorage.removeItem(TOKEN_KEY),
};

export type ActionResult = { ok: true; message: string } | { ok: false; refused: boolean; message: string };

/** Sends an action; a refused token is forgotten so the next attempt asks again. */
export async function runAction(action: NodeAction, mac: string, token: string): Promise<ActionResult> {
  let res: Response;
  try {
    res = await fetch(action.path(mac), {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      cache: "no-store",
    });
  } catch {
    return { ok: false, refused: false, message: `${action.label}: the server did not answer` };
  }
  const body = (await res.json().catch(() => ({}))) as { error?: string; state?: string };
  if (res.status === 401) {
    adminToken.forget();
    return {
      ok: false,
      refused: true,
      message: `${action.label} refused: the admin token is wrong (it is in admin.token in the server's state directory)`,
    };
  }
  if (!res.ok)
    return { ok: false, refused: false, message: `${action.label} failed: ${body.error ?? res.status}` };
  adminToken.set(token);
  return { ok: true, message: `${action.label}: ${mac} is now ${body.state ?? "re-armed"}` };
}
