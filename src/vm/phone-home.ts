// The small HTTP endpoint cloud-init's phone_home module posts to when a guest finishes booting.
// It records each post by instance-id (from the path /phone-home/ID or the form's instance_id), so
// readiness can wait for exactly this deployment's guest, not any guest.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { attribute, child, children, parseXmlTree } from "../core/xml-tree.js";
import type { VmNic } from "./domain-xml.js";
import type { Libvirt } from "./libvirt.js";

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
      server.unref(); // a waiter's timer, not the listener, is what keeps a wait alive
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

/**
 * The port `vm deploy --wait` listens on for phone_home. Fixed, not ephemeral: the URL is part of the
 * seed, whose content is the instance-id, so a random port would make each deploy of one spec a new
 * cloud-init instance.
 */
export const PHONE_HOME_PORT = 47621;

/**
 * The host's IPv4 address a guest on the VM's first NIC reaches: the address a libvirt network gives
 * the host (its <ip address>), or a bridge's own address. null, with the reason, when there is none
 * (macvtap and VFs cannot reach their own host; a bridge without an address).
 */
export async function phoneHomeAddress(
  nics: readonly VmNic[],
  libvirt: Libvirt,
  interfaces: ReturnType<typeof networkInterfaces> = networkInterfaces(),
): Promise<{ address: string } | { address: null; reason: string }> {
  const nic = nics[0];
  const v4 = (dev: string) => interfaces[dev]?.find((a) => a.family === "IPv4" && !a.internal)?.address;
  if (nic?.kind === "network") {
    const net = child(parseXmlTree(await libvirt.netXml(nic.network)), "network");
    const ip = children(net, "ip")
      .map((i) => attribute(i, "address"))
      .find((a) => a !== null && /^\d+\.\d+\.\d+\.\d+$/.test(a));
    const bridge = attribute(child(net, "bridge"), "name");
    const address = ip ?? (bridge ? v4(bridge) : undefined);
    return address
      ? { address }
      : { address: null, reason: `libvirt network ${nic.network} gives the host no IPv4 address` };
  }
  if (nic?.kind === "bridge") {
    const address = v4(nic.bridge);
    return address
      ? { address }
      : { address: null, reason: `bridge ${nic.bridge} has no IPv4 address on this host` };
  }
  return { address: null, reason: `a ${nic?.kind ?? "VM without a"} NIC cannot reach its own host` };
}

/**
 * The phone_home server `vm deploy --wait` needs: listening on PHONE_HOME_PORT at the address the
 * VMs' networks reach (phoneHomeAddress of each VM's first NIC; one server, so they must agree).
 * Unref'd, so it never keeps the process alive. null with a note when a VM cannot reach the host,
 * the VMs reach it at different addresses, or the port is taken (the wait then skips that stage).
 */
export async function startPhoneHomeFor(
  vms: readonly { name: string; nics: readonly VmNic[] }[],
  libvirt: Libvirt,
  port = PHONE_HOME_PORT,
): Promise<{ server: PhoneHomeServer | null; note?: string }> {
  const skipped = (why: string) => ({ server: null, note: `the wait skips phone_home: ${why}` });
  const found = new Map<string, string[]>();
  for (const vm of vms) {
    const where = await phoneHomeAddress(vm.nics, libvirt).catch((e: Error) => ({
      address: null,
      reason: e.message,
    }));
    if (where.address === null) return skipped(`${vm.name}: ${where.reason}`);
    found.set(where.address, [...(found.get(where.address) ?? []), vm.name]);
  }
  const [address, ...others] = [...found.keys()];
  if (!address) return skipped("no VMs");
  if (others.length) {
    const list = [...found].map(([a, names]) => `${names.join(", ")} at ${a}`).join("; ");
    return skipped(`the VMs reach this host at different addresses (${list})`);
  }
  try {
    return { server: await startPhoneHomeServer(address, port) };
  } catch (e) {
    return skipped(
      `cannot listen on ${address}:${port} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
}
