// Readiness as a staged timeline, checked by independent signals: the domain is defined, it runs, it
// has an address (DHCP lease or guest agent, whichever answers first), cloud-init phoned home, and
// `cloud-init status --wait` finished (exit 0, or 2 = finished with warnings). One deadline bounds
// every wait. A timeout names the last stage reached and a size-capped copy of the serial console.
import { open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventBus } from "../apply/events.js";
import type { IpAddress, Libvirt } from "./libvirt.js";
import type { PhoneHomeServer } from "./phone-home.js";
import { DEFAULT_VM_DIR, readRecord, vmPaths } from "./vm-state.js";

export type ReadyStage = "defined" | "started" | "address" | "phone-home" | "cloud-init";
export type TimelineEntry = { stage: ReadyStage; at: string; durationMs: number; detail?: string };

export type ReadyDeps = { libvirt: Libvirt; dir?: string; bus?: EventBus };
export type ReadyOptions = {
  timeoutMs: number;
  /** The server the seed's phone_home points at; without it the stage is skipped. */
  phoneHome?: PhoneHomeServer;
  pollMs?: number;
  /** Largest serial console copy kept for a timeout report (default 256 KiB). */
  serialCapBytes?: number;
};
export type ReadyResult = { name: string; timeline: TimelineEntry[]; address: string | null };

export class ReadinessError extends Error {
  override readonly name = "ReadinessError";
  constructor(
    message: string,
    readonly lastStage: ReadyStage | null,
    readonly waitingFor: ReadyStage,
    readonly serialLog: string,
    readonly timeline: TimelineEntry[],
    readonly tail: string,
  ) {
    super(message);
  }
}

/**
 * Copies the last capBytes of the serial log to LOG.tail (rewritten each time, so it never grows past
 * the cap) and returns that path and its last lines. The live log belongs to qemu and is left alone.
 */
export async function capturedSerialLog(
  serialLog: string,
  capBytes = 256 * 1024,
  lines = 20,
): Promise<{ path: string; tail: string }> {
  const out = `${serialLog}.tail`;
  let text = "";
  try {
    const size = (await stat(serialLog)).size;
    const fh = await open(serialLog, "r");
    try {
      const len = Math.min(size, capBytes);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      text = buf.toString("utf8");
    } finally {
      await fh.close();
    }
    const w = await open(out, "w", 0o640);
    try {
      await w.writeFile(text);
    } finally {
      await w.close();
    }
  } catch {
    return { path: serialLog, tail: "" };
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: serial consoles carry ANSI escapes
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\r/g, "");
  return { path: out, tail: clean.split("\n").slice(-lines).join("\n") };
}

const firstIpv4 = (ifaces: { addrs: IpAddress[] }[]) =>
  ifaces.flatMap((i) => i.addrs).find((a) => a.family === "ipv4")?.address;

export async function waitReady(name: string, deps: ReadyDeps, options: ReadyOptions): Promise<ReadyResult> {
  const lv = deps.libvirt;
  const vmDir = deps.dir ?? DEFAULT_VM_DIR;
  const record = await readRecord(vmDir, name);
  const serialLog = record?.serialLog ?? vmPaths(vmDir, name).serialLog;
  const pollMs = options.pollMs ?? 1000;
  const deadline = Date.now() + options.timeoutMs;
  const remaining = () => Math.max(0, deadline - Date.now());
  const timeline: TimelineEntry[] = [];
  let mark = Date.now();
  const reached = (stage: ReadyStage, detail?: string) => {
    const t = Date.now();
    timeline.push({
      stage,
      at: new Date(t).toISOString(),
      durationMs: t - mark,
      ...(detail ? { detail } : {}),
    });
    mark = t;
    deps.bus?.emit({
      type: "step",
      phase: "finished",
      id: `vm.${name}.ready.${stage}`,
      summary: `${name}: ${stage}`,
      time: new Date(t).toISOString(),
      durationMs: timeline.at(-1)?.durationMs,
      ...(detail ? { detail } : {}),
    });
  };
  const fail = async (waitingFor: ReadyStage, why: string): Promise<never> => {
    const last = timeline.at(-1)?.stage ?? null;
    const log = await capturedSerialLog(serialLog, options.serialCapBytes);
    const msg =
      `${name} not ready (limit ${Math.round(options.timeoutMs / 1000)} s): last stage reached ` +
      `${last ?? "none"}, waiting for ${waitingFor} (${why}); serial console: ${log.path}`;
    deps.bus?.emit({
      type: "step",
      phase: "failed",
      id: `vm.${name}.ready.${waitingFor}`,
      summary: `${name}: ${waitingFor}`,
      time: new Date().toISOString(),
      error: msg,
    });
    throw new ReadinessError(msg, last, waitingFor, log.path, timeline, log.tail);
  };
  /** Polls fn until it returns a value; errors count as "not yet", the last one is reported. */
  const poll = async <T>(stage: ReadyStage, fn: () => Promise<T | undefined>): Promise<T> => {
    let last = "";
    for (;;) {
      try {
        const v = await fn();
        if (v !== undefined) return v;
      } catch (e) {
        last = (e as Error).message;
      }
      if (remaining() <= 0) return fail(stage, last || "no answer yet");
      await sleep(Math.min(pollMs, remaining()));
    }
  };

  await poll("defined", async () => ((await lv.domainExists(name)) ? true : undefined));
  reached("defined");
  await poll("started", async () => {
    const s = await lv.domainState(name);
    if (s === "shut off" || s === "crashed") throw new Error(`domain is ${s}`);
    return s === "running" ? s : undefined;
  });
  reached("started");
  const address = await poll("address", async () => {
    const lease = firstIpv4(await lv.ifAddresses(name, "lease").catch(() => []));
    if (lease) return `${lease} (DHCP lease)`;
    const agent = (await lv.ifAddresses(name, "agent").catch(() => []))
      .filter((i) => i.iface !== "lo")
      .flatMap((i) => i.addrs)
      .find((a) => a.family === "ipv4" && !a.address.startsWith("127."))?.address;
    return agent ? `${agent} (guest agent)` : undefined;
  });
  reached("address", address);
  if (options.phoneHome) {
    if (!record) return fail("phone-home", `no kvmstrap record for ${name}, so no instance-id to wait for`);
    try {
      const post = await options.phoneHome.waitFor(record.instanceId, remaining());
      reached("phone-home", `from ${post.remote} (${post.form.hostname ?? "?"})`);
    } catch (e) {
      return fail("phone-home", (e as Error).message);
    }
  }
  await poll("cloud-init", async () => ((await lv.agentPing(name)) ? true : undefined));
  let status: Awaited<ReturnType<Libvirt["agentExec"]>>;
  for (;;) {
    try {
      status = await lv.agentExec(name, "/usr/bin/cloud-init", ["status", "--wait"], {
        timeoutMs: remaining(),
      });
      break;
    } catch (e) {
      // The agent can drop while cloud-init restarts services; retry until the deadline.
      if (remaining() <= pollMs) return fail("cloud-init", (e as Error).message);
      await sleep(pollMs);
    }
  }
  const summary = status.stdout.trim().split("\n").at(-1) ?? "";
  if (status.exitCode !== 0 && status.exitCode !== 2) {
    return fail(
      "cloud-init",
      `cloud-init status exited ${status.exitCode}: ${summary || status.stderr.trim()}`,
    );
  }
  reached("cloud-init", status.exitCode === 2 ? `${summary} (with warnings)` : summary);
  return { name, timeline, address: address.replace(/ \(.*\)$/, "") };
}
