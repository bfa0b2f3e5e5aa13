// An https GET that trusts one certificate by its SHA-256 fingerprint instead of a CA: a boot
// server on a provisioning network often has a self-signed certificate, and the operator pins it
// on the kernel command line (kvmstrap.answer-fingerprint=), as Proxmox's --cert-fingerprint does.
//
// Written on node:tls and node:https because Node 20's built-in fetch takes no TLS options without
// the undici package (whose current major needs a newer Node). The TLS connection is made and its
// certificate compared first; only a matching socket is handed to the request, so a server that does
// not match is sent nothing at all (no path, no bearer token).
import { request } from "node:https";
import { isIP } from "node:net";
import { connect, type TLSSocket } from "node:tls";

/** A response as the answer fetch reads it, from fetch or from here. */
export interface HttpGot {
  status: number;
  statusText: string;
  /** content-length, or 0 when not declared. */
  declared: number;
  body: AsyncIterable<Uint8Array>;
  /** Stops reading and closes the connection. */
  cancel(): void;
}

/** The certificate did not match the pin. Final: a retry would meet the same certificate. */
export class PinMismatchError extends Error {
  override name = "PinMismatchError";
  constructor(
    readonly actual: string,
    readonly pinned: string,
  ) {
    super(`certificate fingerprint ${actual} is not the pinned ${pinned}`);
  }
}

/**
 * A fingerprint as 64 upper-case hex digits: "sha256:" optional, colons optional, any case.
 * Null when it is not one.
 */
export function normalizeFingerprint(spec: string): string | null {
  const hex = spec
    .trim()
    .replace(/^sha256:/i, "")
    .replaceAll(":", "")
    .toUpperCase();
  return /^[0-9A-F]{64}$/.test(hex) ? hex : null;
}

/** AB:CD:... as openssl and Node print it. */
export function formatFingerprint(hex: string): string {
  return hex.match(/../g)?.join(":") ?? hex;
}

function tlsConnect(url: URL, signal: AbortSignal): Promise<TLSSocket> {
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port: Number(url.port || 443),
      ...(isIP(host) ? {} : { servername: host }),
      // The pin replaces the CA check; it is made below, before anything is written.
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    const onAbort = () => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    socket.once("secureConnect", () => {
      signal.removeEventListener("abort", onAbort);
      resolve(socket);
    });
    socket.once("error", (e) => {
      signal.removeEventListener("abort", onAbort);
      reject(e);
    });
  });
}

/** GET `url` over TLS if and only if the server's certificate has the fingerprint `pin` (normalized). */
export async function pinnedGet(
  url: URL,
  headers: Record<string, string>,
  pin: string,
  signal: AbortSignal,
): Promise<HttpGot> {
  const socket = await tlsConnect(url, signal);
  const actual = normalizeFingerprint(socket.getPeerCertificate().fingerprint256 ?? "") ?? "(none)";
  if (actual !== pin) {
    socket.destroy();
    throw new PinMismatchError(formatFingerprint(actual), formatFingerprint(pin));
  }
  return new Promise((resolve, reject) => {
    // No agent: with one (even agent: false) Node opens its own connection and ignores this socket.
    const req = request(url, { method: "GET", headers, createConnection: () => socket, signal });
    req.once("error", reject);
    req.once("response", (res) => {
      resolve({
        status: res.statusCode ?? 0,
        statusText: res.statusMessage ?? "",
        declared: Number(res.headers["content-length"] ?? "0"),
        body: res,
        cancel: () => {
          res.destroy();
          socket.destroy();
        },
      });
    });
    req.end();
  });
}
