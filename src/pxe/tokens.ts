// Per-node bearer tokens: HMAC-SHA256(key, mac | expiry), so a token names its node and its expiry,
// cannot be forged or moved to another node, survives a server restart (the key is kept in the state
// directory), and needs no table. Compared in constant time. The admin token (re-arm) is a random
// secret in the state directory, readable only by the server's user.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic-write.js";

export type TokenCheck = { ok: true } | { ok: false; reason: "missing" | "invalid" | "expired" };

export class NodeTokens {
  constructor(
    private readonly key: Buffer,
    /** Seconds a token stays valid after it is issued. */
    readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  issue(mac: string): string {
    const expiry = Math.floor(this.now() / 1000) + this.ttlSeconds;
    return `${expiry.toString(36)}.${this.sign(mac, expiry)}`;
  }

  check(mac: string, token: string | undefined): TokenCheck {
    if (!token) return { ok: false, reason: "missing" };
    const dot = token.indexOf(".");
    const expiry = dot > 0 ? Number.parseInt(token.slice(0, dot), 36) : Number.NaN;
    if (!Number.isSafeInteger(expiry)) return { ok: false, reason: "invalid" };
    if (!constantTimeEqual(token.slice(dot + 1), this.sign(mac, expiry)))
      return { ok: false, reason: "invalid" };
    if (expiry * 1000 <= this.now()) return { ok: false, reason: "expired" };
    return { ok: true };
  }

  private sign(mac: string, expiry: number): string {
    return createHmac("sha256", this.key).update(`kvmstrap-node\0${mac}\0${expiry}`).digest("base64url");
  }
}

/** Equal strings, in time that does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Compare against itself on a length mismatch so the time does not reveal the expected length.
  if (x.length !== y.length) {
    timingSafeEqual(y, y);
    return false;
  }
  return timingSafeEqual(x, y);
}

/** The bearer token of an Authorization header, if any. */
export function bearer(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

/** A secret kept in the state directory (created on first use, mode 0600). */
export async function stateSecret(stateDir: string, name: string, bytes = 32): Promise<string> {
  const file = path.join(stateDir, name);
  try {
    const text = (await readFile(file, "utf8")).trim();
    if (text.length >= 32) return text;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  const secret = randomBytes(bytes).toString("base64url");
  await writeFileAtomic(file, `${secret}\n`, 0o600);
  return secret;
}

export const TOKEN_KEY_FILE = "token.key";
export const ADMIN_TOKEN_FILE = "admin.token";
