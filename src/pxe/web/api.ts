// The fleet API (GET /v1/fleet/*, the node and rollout actions) with the admin token as a Bearer
// header. The token comes from the login form or the re-arm dialog and is kept in the tab's
// sessionStorage (actions.ts adminToken); it never goes into a URL. A 401 means the server refused
// it: the token is forgotten and whoever listens (the login form) says "token refused".
import { adminToken } from "./actions.js";

export type ApiResult<T> =
  | { ok: true; status: number; body: T }
  | { ok: false; status: number; refused: boolean; message: string };

/** What the page says when the server answers 401 (the tests look for these words). */
export const TOKEN_REFUSED = "token refused";

const refusedListeners = new Set<() => void>();
/** Called after any request whose token the server refused (401). */
export function onTokenRefused(fn: () => void): void {
  refusedListeners.add(fn);
}

export async function api<T>(
  method: "GET" | "POST",
  path: string,
  body?: unknown,
  token: string | undefined = adminToken.get(),
): Promise<ApiResult<T>> {
  if (!token) return { ok: false, status: 401, refused: true, message: "sign in with the admin token first" };
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      cache: "no-store",
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    return { ok: false, status: 0, refused: false, message: "the server did not answer" };
  }
  const parsed = (await res.json().catch(() => undefined)) as unknown;
  if (res.status === 401) {
    adminToken.forget();
    for (const fn of refusedListeners) fn();
    return {
      ok: false,
      status: 401,
      refused: true,
      message: `${TOKEN_REFUSED}: the server did not accept the admin token (admin.token in its state directory)`,
    };
  }
  if (!res.ok) {
    const error = (parsed as { error?: unknown } | undefined)?.error;
    return {
      ok: false,
      status: res.status,
      refused: false,
      message: typeof error === "string" ? error : `HTTP ${res.status}`,
    };
  }
  return { ok: true, status: res.status, body: parsed as T };
}

/** A node or rollout id in a URL path. */
export const seg = (id: string | number) => encodeURIComponent(String(id));
