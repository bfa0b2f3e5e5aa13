// The small HTTP endpoint cloud-init's phone_home module posts to when a guest finishes booting.
// It records each post by instance-id (from the path /phone-home/ID or the form's instance_id), so
// readiness can wait for exactly this deployment's guest, not any guest.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export type PhoneHomePost = { instanceId: string; form: Record<string, string>; at: number; remote: string };

export type PhoneHomeServer = {
  /** The phone_home URL for seeds; cloud-init substitutes $INSTANCE_ID. */
  url: string;
  port: number;
  posts: Map<string, PhoneHomePost>;
  /** Resolves with the post for instanceId (at once when it already came); rejects after timeoutMs. */
  waitFor(instanceId: string, timeoutMs: number): Promise<PhoneHomePost>;
  close(): Promise<void>;
};

const MAX_BODY = 64 * 1024;

export function startPhoneHomeServer(host: string, port = 0): Promise<PhoneHomeServer> {
  const posts = new Map<string, PhoneHomePost>();
  const waiters = new Map<string, Set<(p: PhoneHomePost) => void>>();
  const server: Server = createServer((req, res) => {
    const m = /^\/phone-home\/([A-Za-z0-9._-]{1,128})\/?$/.exec(req.url ?? "");
    if (req.method !== "POST" || !m) {
      res.statusCode = 404;
      res.end("not found\n");
      return;
    }
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
      if (body.length > MAX_BODY) req.destroy();
    });
    req.on("end", () => {
      const form = Object.fromEntries(new URLSearchParams(body));
      const instanceId = form.instance_id || (m[1] as string);
      const post = { instanceId, form, at: Date.now(), remote: req.socket.remoteAddress ?? "" };
      posts.set(instanceId, post);
      for (const w of waiters.get(instanceId) ?? []) w(post);
      waiters.delete(instanceId);
      res.end("ok\n");
    });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const bound = (server.address() as AddressInfo).port;
      const h = host.includes(":") ? `[${host}]` : host;
      resolve({
        url: `http://${h}:${bound}/phone-home/$INSTANCE_ID`,
        port: bound,
        posts,
        waitFor(instanceId, timeoutMs) {
          const done = posts.get(instanceId);
          if (done) return Promise.resolve(done);
          return new Promise((ok, fail) => {
            const set = waiters.get(instanceId) ?? new Set();
            waiters.set(instanceId, set);
            const timer = setTimeout(() => {
              set.delete(deliver);
              fail(new Error(`no phone_home from ${instanceId} within ${Math.round(timeoutMs / 1000)} s`));
            }, timeoutMs);
            const deliver = (p: PhoneHomePost) => {
              clearTimeout(timer);
              ok(p);
            };
            set.add(deliver);
          });
        },
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            server.closeAllConnections();
          }),
      });
    });
  });
}
