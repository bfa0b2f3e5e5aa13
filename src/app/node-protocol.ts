// The one definition of what a netbooted appliance and `kvmstrap serve` say to each other: the
// kernel command line parameters the server's per-node iPXE script sets, the HTTP paths the
// appliance calls, and the lifecycle events it posts. The server (src/pxe) and the appliance's
// agent (src/app) both import this file, so neither can drift from the other.
import { z } from "zod";
import { applyEventSchema } from "../apply/events.js";
import { hostReport } from "../detect/types.js";

/** Kernel command line parameters (read from /proc/cmdline on the appliance). */
export const CMDLINE = {
  /** Base URL of the boot server, e.g. http://10.0.0.1:8080 (no trailing slash). */
  server: "kvmstrap.server",
  /** The node's id at the server: its boot MAC, lower case, colon-separated. */
  node: "kvmstrap.node",
  /** Bearer token for this node's answer and event intake; it expires (see the server's --token-ttl). */
  token: "kvmstrap.token",
  /** Where the answer file is: http(s)://, file:///path, or label:FSLABEL[/path]. */
  answer: "kvmstrap.answer",
  /** Optional sha256 (hex) the fetched answer must have. */
  answerSha256: "kvmstrap.answer-sha256",
  /**
   * Optional SHA-256 fingerprint of an https:// answer server's certificate (sha256:AB:CD:..., the
   * prefix and colons optional, any case). With it the certificate must match it exactly and no CA
   * is asked (a self-signed certificate on a provisioning network); without it, normal CA checks.
   */
  answerFingerprint: "kvmstrap.answer-fingerprint",
  /** The explicit go-ahead for an unattended install; without it the TUI asks, even with an answer. */
  auto: "kvmstrap.auto",
  /** 1: the unattended install erases a disk holding the same answer's install (default: leave it). */
  reinstall: "kvmstrap.reinstall",
  /** After a successful unattended install: reboot (the default), poweroff, or stay on the live system. */
  after: "kvmstrap.after",
  /**
   * Remote syslog for the agent's and the install's lines (RFC 5424): udp://HOST[:PORT] or
   * tcp://HOST[:PORT], port 514 by default. Secrets are scrubbed before anything is sent.
   */
  syslog: "kvmstrap.syslog",
  /** sha256 of filesystem.squashfs, checked by the initramfs after fetch= (with retries). */
  fetchSha256: "kvmstrap.fetch-sha256",
  /**
   * kvmstrap.mode=discover: a node the fleet does not know yet. The agent posts its detect report
   * and waits (hold before destroy) until its answer is served: the operator approved it.
   */
  mode: "kvmstrap.mode",
} as const;

/** The value of kvmstrap.mode for discovery. */
export const DISCOVER_MODE = "discover";

/** The value kvmstrap.auto must have to start an unattended install. */
export const AUTO_INSTALL = "install";

/** What kvmstrap.after= may say; a failed install never reboots (its summary stays on the consoles). */
export const AFTER_INSTALL = ["reboot", "poweroff", "stay"] as const;
export type AfterInstall = (typeof AFTER_INSTALL)[number];
export const DEFAULT_AFTER_INSTALL: AfterInstall = "reboot";

/** HTTP paths on the boot server, relative to kvmstrap.server. `mac` is lower case, colon-separated. */
export const NODE_PATHS = {
  answer: (mac: string) => `/v1/nodes/${encodeURIComponent(mac)}/answer`,
  events: (mac: string) => `/v1/nodes/${encodeURIComponent(mac)}/events`,
  rearm: (mac: string) => `/v1/nodes/${encodeURIComponent(mac)}/rearm`,
  report: (mac: string) => `/v1/nodes/${encodeURIComponent(mac)}/report`,
  status: "/v1/status",
} as const;

/** Where the appliance stands, as it tells the server (POST events, Authorization: Bearer TOKEN). */
export const nodePhaseSchema = z.enum([
  "appliance-up", // the live system is up and reached the server
  "answer-fetched", // the answer was fetched and checked (sha256, schema)
  "installing", // the unattended install started
  "installed", // the target disk is written; the node will reboot into it (next PXE boot: local disk)
  "rebooted", // the installed system is up (first boot)
  "verified", // kvmstrap verify passed
  "failed", // something failed; detail says what and where to look
]);
export type NodePhase = z.infer<typeof nodePhaseSchema>;

export const nodeLifecycleEventSchema = z.strictObject({
  type: z.literal("node"),
  phase: nodePhaseSchema,
  time: z.string(),
  /** One line for the operator; secrets are redacted by the sender. */
  detail: z.string().max(2000).optional(),
});
export type NodeLifecycleEvent = z.infer<typeof nodeLifecycleEventSchema>;

/** What the intake accepts: a lifecycle event, or an apply event (the answer's webhook points here). */
export const nodeEventSchema = z.union([nodeLifecycleEventSchema, applyEventSchema]);
export type NodeEvent = z.infer<typeof nodeEventSchema>;

/**
 * A discovered node's report (POST report, the node's bearer token): its DMI identity (which the
 * detect report does not carry) and every MAC, so the fleet knows it by UUID and serial first.
 */
export const nodeReportSchema = z.strictObject({
  identity: z.strictObject({
    uuid: z.string().max(64).nullable(),
    serial: z.string().max(128).nullable(),
    assetTag: z.string().max(128).nullable(),
    macs: z.array(z.string().max(32)).max(256),
  }),
  report: hostReport,
});
export type NodeReportBody = z.infer<typeof nodeReportSchema>;

/** Largest report body the server reads (a big machine's report is a few hundred KiB). */
export const MAX_REPORT_BYTES = 4 * 1024 * 1024;

/** The answer route's "not yet": 409 waiting for approval, 423 held. The agent waits on either. */
export const ANSWER_WAIT_STATUS = [409, 423] as const;

/**
 * A "not yet" (409/423) answer to a request with a still-valid token carries a fresh one in this
 * header (an expired token gets 401, never a new one): a node waiting hours for its approval keeps
 * a valid token, and the agent uses the newest for its answer fetch and its reports. A secret like
 * the token itself: never logged.
 */
export const TOKEN_REFRESH_HEADER = "x-kvmstrap-token";

/** Largest event body the intake reads. */
export const MAX_EVENT_BYTES = 16 * 1024;

/** The kvmstrap.* parameters of a kernel command line (later ones win, as the kernel does). */
export function parseKernelCmdline(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const word of text.trim().split(/\s+/)) {
    if (!word.startsWith("kvmstrap.")) continue;
    const eq = word.indexOf("=");
    out.set(eq < 0 ? word : word.slice(0, eq), eq < 0 ? "" : word.slice(eq + 1));
  }
  return out;
}
