// The appliance's lines off the console before the target disk exists: kvmstrap.syslog=udp://HOST:PORT
// (or tcp://) sends every line the agent says or logs, the install's output among them, to a remote
// syslog receiver as RFC 5424 messages.
//
// The sender is util-linux's logger (bsdutils, an Essential package, so every Debian root and the
// live image have it): one long-lived `logger --server ... --rfc5424 --prio-prefix` reading lines on
// its stdin, so the wire format, name resolution and TCP framing are a well-kept tool's, not ours.
// Lines arrive already scrubbed of secrets; forwarding never stops the boot, it only says why it ended.
import { spawn } from "node:child_process";
import { InputError } from "../core/errors.js";
import { CMDLINE } from "./node-protocol.js";

export interface SyslogTarget {
  proto: "udp" | "tcp";
  host: string;
  port: number;
}

/** The syslog port when the URL names none (RFC 5426 for UDP; 514 is what receivers listen on for TCP too). */
export const SYSLOG_PORT = 514;
/** APP-NAME of every message. */
export const SYSLOG_TAG = "kvmstrap-agent";

// udp:// or tcp://, then a host name, an IPv4 address or an [IPv6] address, then an optional port.
const SYSLOG_URL = /^(udp|tcp):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/;

/** Parses kvmstrap.syslog='s value; InputError naming the parameter otherwise. */
export function parseSyslogTarget(spec: string): SyslogTarget {
  const m = SYSLOG_URL.exec(spec);
  const port = m?.[3] === undefined ? SYSLOG_PORT : Number(m[3]);
  if (!m?.[1] || !m[2] || port < 1 || port > 65535) {
    throw new InputError(
      `${CMDLINE.syslog}=${spec}: not udp://HOST[:PORT] or tcp://HOST[:PORT] (a name or address, a port 1-65535)`,
    );
  }
  return { proto: m[1] as "udp" | "tcp", host: m[2].replace(/^\[(.*)\]$/, "$1"), port };
}

export function describeSyslog(t: SyslogTarget): string {
  return `${t.proto}://${t.host.includes(":") ? `[${t.host}]` : t.host}:${t.port}`;
}

/** RFC 5424 severities the agent uses. */
export type Severity = "err" | "notice" | "info";
const PRI: Record<Severity, number> = { err: 3, notice: 5, info: 6 };
const FACILITY_USER = 1;

export interface LineForwarder {
  /** Queues one line (no newline inside; it is split otherwise). Dropped once the sender ended. */
  send(line: string, severity: Severity): void;
  /** Ends the stream and waits for every queued line to go out (at most timeoutMs). */
  close(timeoutMs?: number): Promise<void>;
}

/**
 * Starts logger for `target`. `onEnd` hears, once, why forwarding ended early (logger missing, a
 * name that does not resolve, a TCP receiver that refused), already fit for the console.
 */
export function startSyslog(
  target: SyslogTarget,
  onEnd: (problem: string) => void,
  o: { program?: string; tag?: string } = {},
): LineForwarder {
  const program = o.program ?? "logger";
  const child = spawn(
    program,
    [
      "--server",
      target.host,
      "--port",
      String(target.port),
      target.proto === "udp" ? "--udp" : "--tcp",
      "--rfc5424",
      "--prio-prefix",
      "--tag",
      o.tag ?? SYSLOG_TAG,
      "--size",
      "4096",
    ],
    { stdio: ["pipe", "ignore", "pipe"] },
  );
  let ended = false;
  let closing = false;
  let stderr = "";
  const exited = new Promise<void>((resolve) => {
    const end = (problem: string | null) => {
      if (ended) return;
      ended = true;
      if (problem && !closing)
        onEnd(`syslog: lines are no longer sent to ${describeSyslog(target)}: ${problem}`);
      resolve();
    };
    child.stderr.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-2000);
    });
    child.on("error", (e: NodeJS.ErrnoException) =>
      end(e.code === "ENOENT" ? `${program} not found (util-linux's logger, package bsdutils)` : e.message),
    );
    child.on("close", (code, signal) =>
      end(
        code === 0
          ? null
          : `${program} exited ${code ?? signal}${stderr.trim() ? `: ${stderr.trim().split("\n").at(-1)}` : ""}`,
      ),
    );
  });
  child.stdin.on("error", () => {}); // EPIPE once logger is gone: its exit says why
  return {
    send(line, severity) {
      if (ended || closing) return;
      const pri = FACILITY_USER * 8 + PRI[severity];
      for (const part of line.split("\n")) if (part.trim()) child.stdin.write(`<${pri}>${part}\n`);
    },
    async close(timeoutMs = 5000) {
      if (!closing && !ended) {
        closing = true;
        child.stdin.end();
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
      clearTimeout(timer);
      if (!ended) child.kill("SIGKILL");
    },
  };
}
