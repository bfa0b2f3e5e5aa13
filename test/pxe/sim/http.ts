// HTTP as iPXE and the appliance use it: one connection per request from the node's own address,
// bodies hashed as they stream (kernels and initrds are not kept), a deadline per request.
import { createHash } from "node:crypto";
import { request } from "node:http";

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  sha256: string;
  /** The body as text when `keep` was asked (scripts, answers). */
  text: string;
}

export interface HttpCall {
  url: string;
  local?: string | undefined;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  keep?: boolean;
  timeoutMs?: number;
}

export function httpCall(o: HttpCall): Promise<HttpResult> {
  const u = new URL(o.url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port || 80,
        path: `${u.pathname}${u.search}`,
        method: o.method ?? "GET",
        headers: o.headers,
        agent: false,
        ...(o.local ? { localAddress: o.local } : {}),
        timeout: o.timeoutMs ?? 60_000,
      },
      (res) => {
        const hash = createHash("sha256");
        const kept: Buffer[] = [];
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
          if (o.keep && bytes <= 1024 * 1024) kept.push(c);
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            bytes,
            sha256: hash.digest("hex"),
            text: Buffer.concat(kept).toString("utf8"),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${o.url}: no answer within ${o.timeoutMs ?? 60_000} ms`)));
    req.on("error", reject);
    req.end(o.body);
  });
}
