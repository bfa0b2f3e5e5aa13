// The client of a running `kvmstrap serve`: where the server is (--server, KVMSTRAP_SERVER), its admin
// token (--token-file, KVMSTRAP_ADMIN_TOKEN, else serve's own state directory), and the fleet node
// routes. The CLI (`kvmstrap fleet`, `kvmstrap serve status|rearm`) and the TUI call this; nothing
// here prints.
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { EXIT, type ExitCode, InputError } from "../core/errors.js";
import type { PowerSettings } from "../fleet/power/index.js";
import type { FleetNode, FleetNodeDetail } from "./fleet-serve.js";
import { NODE_PATHS } from "./node-protocol.js";

export type { PowerSettings } from "../fleet/power/index.js";
export { describePower, parsePowerSettings } from "../fleet/power/settings.js";
export type { FleetNode, FleetNodeDetail } from "./fleet-serve.js";

/** serve's default HTTP port; the client's default server is this port on loopback. */
export const DEFAULT_HTTP_PORT = 8080;
/** The admin token's file name in serve's state directory. */
export const ADMIN_TOKEN_FILE = "admin.token";

/** The server is not there (or did not answer): exit 1, naming the URL. */
export class ServerUnreachable extends InputError {
  override readonly exitCode: ExitCode = EXIT.failed;
}

/** serve's state directory when --state-dir is not given. */
export function defaultServeStateDir(): string {
  if (process.getuid?.() === 0) return "/var/lib/kvmstrap/serve";
  const base = process.env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(base, "kvmstrap", "serve");
}

/** --server, else KVMSTRAP_SERVER, else serve's default on loopback; no trailing slash. */
export function serverBase(server?: string | undefined): string {
  const url = server ?? process.env.KVMSTRAP_SERVER ?? `http://127.0.0.1:${DEFAULT_HTTP_PORT}`;
  if (!/^https?:\/\/[^/\s]+/i.test(url)) throw new InputError(`--server ${url}: expected http://HOST:PORT`);
  return url.replace(/\/+$/, "");
}

export interface TokenSource {
  /** --token-file: wins over everything. */
  tokenFile?: string | undefined;
  /** serve's --state-dir, whose admin.token is read when neither the file nor the variable is given. */
  stateDir?: string | undefined;
}

/** The admin token and where it came from (for the message when the server refuses it). */
export async function adminToken(o: TokenSource = {}): Promise<{ token: string; from: string }> {
  if (!o.tokenFile && process.env.KVMSTRAP_ADMIN_TOKEN)
    return { token: process.env.KVMSTRAP_ADMIN_TOKEN.trim(), from: "KVMSTRAP_ADMIN_TOKEN" };
  const file = o.tokenFile ?? path.join(path.resolve(o.stateDir ?? defaultServeStateDir()), ADMIN_TOKEN_FILE);
  try {
    const token = (await readFile(file, "utf8")).trim();
    if (!token) throw Object.assign(new Error("empty"), { code: "empty" });
    return { token, from: file };
  } catch (e) {
    throw new InputError(
      `${file}: cannot read the admin token (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); pass --token-file (or serve's --state-dir) or set KVMSTRAP_ADMIN_TOKEN`,
    );
  }
}

/** fetch with a timeout; a server that is not there is a ServerUnreachable naming the URL. */
export async function request(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: init?.signal ?? AbortSignal.timeout(10_000) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    const why = err.name === "TimeoutError" ? "no answer within 10 s" : (err.cause?.code ?? err.message);
    throw new ServerUnreachable(`${url}: ${why} (is kvmstrap serve running there? see --server)`);
  }
}

/** The fleet node routes of a running server, with its admin token. */
export class FleetClient {
  constructor(
    readonly base: string,
    private readonly token: { token: string; from: string },
  ) {}

  static async connect(o: { server?: string | undefined } & TokenSource): Promise<FleetClient> {
    return new FleetClient(serverBase(o.server), await adminToken(o));
  }

  async nodes(filter: { rack?: string | undefined; state?: string | undefined } = {}): Promise<FleetNode[]> {
    const q = new URLSearchParams();
    if (filter.rack) q.set("rack", filter.rack);
    if (filter.state) q.set("state", filter.state);
    const s = q.toString();
    return (await this.call<{ nodes: FleetNode[] }>("GET", `/v1/fleet/nodes${s ? `?${s}` : ""}`)).nodes;
  }

  show(node: string): Promise<FleetNodeDetail> {
    return this.call("GET", `/v1/fleet/nodes/${encodeURIComponent(node)}`);
  }

  approve(node: string, reason?: string): Promise<FleetNode> {
    return this.call("POST", `/v1/fleet/nodes/${encodeURIComponent(node)}/approve`, reason ? { reason } : {});
  }

  hold(node: string, reason: string): Promise<FleetNode> {
    return this.call("POST", `/v1/fleet/nodes/${encodeURIComponent(node)}/hold`, { reason });
  }

  rearm(node: string): Promise<FleetNode> {
    return this.call("POST", `/v1/fleet/nodes/${encodeURIComponent(node)}/rearm`, {});
  }

  /** Stores the node's power settings; the server answers with them redacted. */
  setPower(node: string, settings: PowerSettings): Promise<PowerSettings> {
    return this.call("PUT", `/v1/fleet/nodes/${encodeURIComponent(node)}/power`, settings);
  }

  /** The node's stored power settings, redacted (every password "(set)"); none: an InputError. */
  power(node: string): Promise<PowerSettings> {
    return this.call("GET", `/v1/fleet/nodes/${encodeURIComponent(node)}/power`);
  }

  /** serve's own re-arm by MAC (the boot-once flag of one serve's table). */
  async rearmMac(mac: string): Promise<{ mac: string; state?: string }> {
    return this.call("POST", NODE_PATHS.rearm(mac));
  }

  /** One call; a refusal is an InputError with the server's one line (exit 2), a dead server exit 1. */
  async call<T>(method: "GET" | "POST" | "PUT", route: string, body?: unknown): Promise<T> {
    const url = `${this.base}${route}`;
    const res = await request(url, {
      method,
      headers: {
        authorization: `Bearer ${this.token.token}`,
        ...(body !== undefined ? { "content-type": "application/json" } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let data: unknown;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (res.status === 401)
      throw new InputError(
        `${this.base}: the admin token was refused (is ${this.token.from} this server's?)`,
      );
    if (!res.ok) {
      const error = (data as { error?: unknown } | undefined)?.error;
      const line = typeof error === "string" ? error : `HTTP ${res.status}`;
      if (res.status >= 500) throw new ServerUnreachable(`${url}: ${line}`);
      throw new InputError(
        res.status === 404 && route.startsWith("/v1/fleet/") && !error
          ? `${url}: this server keeps no fleet (HTTP 404)`
          : line,
      );
    }
    return data as T;
  }
}
