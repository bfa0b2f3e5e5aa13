// The qemu hook's I/O: libvirtd runs /etc/libvirt/hooks/qemu.d/kvmstrap-vlan (a wrapper exec'ing
// `kvmstrap libvirt-hook qemu DOMAIN OP SUBOP EXTRA`) with the domain XML on stdin. This reads that XML
// (bounded: libvirtd waits on the hook, so a stuck or endless stdin must not hold it), reads what sysfs
// says of the bridges, and runs the `bridge vlan` commands src/vm/vlan-hook.ts decides.
import { readFile } from "node:fs/promises";
import type { Readable } from "node:stream";
import { InputError } from "../core/errors.js";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import { type BridgeFacts, decideVlanHook, type HookDecision, taggedPorts } from "../vm/vlan-hook.js";

/** A domain XML is a few KiB; libvirt's own limit on one is far below this. */
export const HOOK_STDIN_MAX = 4 * 1024 * 1024;
export const HOOK_STDIN_TIMEOUT_MS = 10_000;

/** Reads a stream to its end, refusing more than max bytes or a stream still open after timeoutMs. */
export async function readBounded(input: Readable, max: number, timeoutMs: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new InputError(`the domain XML on stdin did not end within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  const read = (async () => {
    for await (const chunk of input) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
      size += b.length;
      if (size > max) throw new InputError(`the domain XML on stdin is larger than ${max} bytes`);
      chunks.push(b);
    }
    return Buffer.concat(chunks).toString("utf8");
  })();
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
    input.destroy();
  }
}

async function bridgeFacts(sysRoot: string, bridge: string): Promise<BridgeFacts> {
  const read = (f: string) => readFile(`${sysRoot}/sys/class/net/${bridge}/${f}`, "utf8").catch(() => null);
  if ((await read("bridge/forward_delay")) === null) return { missing: true };
  const filtering = await read("bridge/vlan_filtering");
  const pvid = Number((await read("bridge/default_pvid"))?.trim() ?? "1");
  return {
    filtering: filtering === null ? "absent" : filtering.trim() === "1" ? "on" : "off",
    defaultPvid: Number.isInteger(pvid) ? pvid : 1,
  };
}

export type LibvirtHookResult = { decision: HookDecision; failed?: string };

/**
 * One hook call. driver: "qemu" (the only one kvmstrap installs); args: DOMAIN OP SUBOP [EXTRA].
 * sysRoot: where /sys is read (tests). Never throws for a refusal: the result says it.
 */
export async function runLibvirtHook(o: {
  driver: string;
  args: readonly string[];
  stdin: Readable;
  sysRoot?: string;
  runner?: CommandRunner;
}): Promise<LibvirtHookResult> {
  if (o.driver !== "qemu") throw new InputError(`libvirt hook "${o.driver}": kvmstrap handles only qemu`);
  const [, op, subop] = o.args;
  // stdin is read to its end on every call, so libvirtd never writes the XML into a closed pipe.
  const xml = await readBounded(o.stdin, HOOK_STDIN_MAX, HOOK_STDIN_TIMEOUT_MS);
  // Only "start begin" acts.
  if (op !== "start" || subop !== "begin") return { decision: decideVlanHook(o.args, [], new Map()) };
  let ports: ReturnType<typeof taggedPorts>;
  try {
    ports = taggedPorts(xml);
  } catch (e) {
    throw new InputError(`the domain XML on stdin does not parse: ${(e as Error).message}`);
  }
  const facts = new Map<string, BridgeFacts>();
  for (const p of ports)
    if (p.bridge && !facts.has(p.bridge)) facts.set(p.bridge, await bridgeFacts(o.sysRoot ?? "", p.bridge));
  const decision = decideVlanHook(o.args, ports, facts);
  if (decision.kind !== "run") return { decision };
  const runner = o.runner ?? new ExecaRunner();
  for (const argv of decision.commands) {
    const [file = "bridge", ...rest] = argv;
    const r = await runner.run(file, rest, { timeoutMs: 10_000, maxBytes: 64 * 1024 });
    if (r.exitCode !== 0)
      return {
        decision,
        failed: `${argv.join(" ")}: ${r.timedOut ? "timed out" : r.stderr.trim() || `exit ${r.exitCode}`}`,
      };
  }
  return { decision };
}
