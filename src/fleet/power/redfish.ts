// Power through a BMC's Redfish service (DMTF DSP0266): the system's PowerState, and its
// ComputerSystem.Reset action with a ResetType the system lists as allowed (On, ForceOff, and
// PowerCycle or else ForceRestart for a cycle). The system is found by following the service's
// Systems collection unless its path is given (member ids differ between vendors). Requests use HTTP
// basic authentication, time out, and read at most 1 MiB; a BMC's self-signed certificate is accepted
// only when the operator says so (insecure), never silently.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { PowerError, type PowerPort, type PowerState } from "./port.js";

export interface RedfishTarget {
  /** The service's address: https://bmc.example (the /redfish/v1 tree is below it). */
  url: string;
  user: string;
  password: string;
  /** The system's path, e.g. /redfish/v1/Systems/1; default: the Systems collection's only member. */
  system?: string;
  /** Accept a certificate that does not verify (BMCs' self-signed ones). */
  insecure?: boolean;
}

const MAX_BODY = 1024 * 1024;

interface Reply {
  status: number;
  body: unknown;
}

export class RedfishPower implements PowerPort {
  private system: string | null;
  private readonly timeoutMs: number;

  constructor(
    private readonly target: RedfishTarget,
    o: { timeoutMs?: number } = {},
  ) {
    this.system = target.system ?? null;
    this.timeoutMs = o.timeoutMs ?? 30_000;
  }

  private fail(message: string): never {
    throw new PowerError("redfish", this.target.url, message);
  }

  private send(method: "GET" | "POST", path: string, body?: unknown): Promise<Reply> {
    const url = new URL(path, this.target.url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const auth = Buffer.from(`${this.target.user}:${this.target.password}`).toString("base64");
    const request = url.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method,
          headers: {
            accept: "application/json",
            authorization: `Basic ${auth}`,
            "odata-version": "4.0",
            ...(payload
              ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
              : {}),
          },
          timeout: this.timeoutMs,
          ...(url.protocol === "https:" ? { rejectUnauthorized: !this.target.insecure } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY)
              req.destroy(new Error(`${method} ${url.pathname}: reply larger than ${MAX_BODY} bytes`));
            else chunks.push(c);
          });
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let parsed: unknown = null;
            try {
              parsed = text ? JSON.parse(text) : null;
            } catch {
              parsed = text;
            }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`${method} ${url.pathname} timed out`)));
      req.on("error", reject);
      req.end(payload);
    }).catch((e: Error) => this.fail(e.message)) as Promise<Reply>;
  }

  private async get(path: string): Promise<Record<string, unknown>> {
    const r = await this.send("GET", path);
    if (r.status !== 200 || typeof r.body !== "object" || r.body === null)
      this.fail(`GET ${path}: ${describe(r)}`);
    return r.body as Record<string, unknown>;
  }

  private async systemPath(): Promise<string> {
    if (this.system) return this.system;
    const members = (await this.get("/redfish/v1/Systems")).Members;
    const ids = Array.isArray(members) ? members.map((m) => (m as Record<string, unknown>)["@odata.id"]) : [];
    if (ids.length !== 1 || typeof ids[0] !== "string")
      this.fail(`the service lists ${ids.length} systems: name one (system: /redfish/v1/Systems/ID)`);
    this.system = ids[0] as string;
    return this.system;
  }

  async status(): Promise<PowerState> {
    const s = (await this.get(await this.systemPath())).PowerState;
    if (s === "On" || s === "PoweringOff" || s === "Paused") return "on";
    if (s === "Off" || s === "PoweringOn") return "off";
    return "unknown";
  }

  /** POSTs the Reset action with the first of `wanted` that the system allows. */
  private async reset(...wanted: string[]): Promise<void> {
    const system = await this.get(await this.systemPath());
    const action = (system.Actions as Record<string, Record<string, unknown>> | undefined)?.[
      "#ComputerSystem.Reset"
    ];
    if (!action || typeof action.target !== "string")
      this.fail("the system has no ComputerSystem.Reset action");
    const allowed = action["ResetType@Redfish.AllowableValues"];
    const type = Array.isArray(allowed) ? wanted.find((w) => allowed.includes(w)) : wanted[0];
    if (!type)
      this.fail(
        `the system allows ResetType ${(allowed as string[]).join(", ")}, not ${wanted.join(" or ")}`,
      );
    const r = await this.send("POST", action.target as string, { ResetType: type });
    if (r.status < 200 || r.status > 204) this.fail(`${type}: ${describe(r)}`);
  }

  async on(): Promise<void> {
    if ((await this.status()) !== "on") await this.reset("On", "ForceOn");
  }

  async off(): Promise<void> {
    if ((await this.status()) !== "off") await this.reset("ForceOff");
  }

  async cycle(): Promise<void> {
    if ((await this.status()) === "off") await this.reset("On", "ForceOn");
    else await this.reset("PowerCycle", "ForceRestart");
  }
}

/** A Redfish error reply: its status and the service's own message (the error object's). */
function describe(r: Reply): string {
  const e = (
    r.body as { error?: { message?: unknown; "@Message.ExtendedInfo"?: { Message?: unknown }[] } } | null
  )?.error;
  const detail = e?.["@Message.ExtendedInfo"]?.[0]?.Message ?? e?.message;
  return `HTTP ${r.status}${typeof detail === "string" ? `: ${detail}` : ""}`;
}
