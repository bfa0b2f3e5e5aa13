// KVM facts: which kvm modules are loaded with what parameters, the device nodes VMs need, and the
// functional probe's verdict. The probe runs only on the live host (a snapshot is another machine).
import type { CommandRunner } from "../host/commands.js";
import { devKvmAccessible, runKvmProbe } from "../host/kvm-probe.js";
import type { DetectContext } from "./sysfs.js";
import type { KvmProbe, KvmReport, Sources } from "./types.js";

export interface ProbeOptions {
  mode?: "auto" | "always" | "never";
  kernel?: string | null;
  cacheFile?: string;
  timeoutMs?: number;
}

const KVM_MODULES = ["kvm", "kvm_intel", "kvm_amd"];

async function readModule(ctx: DetectContext, name: string, sources: Sources) {
  const dir = `/sys/module/${name}`;
  const params = await ctx.fs.readDir(`${dir}/parameters`);
  const present = params !== null || (await ctx.fs.exists(dir));
  const parameters: Record<string, string> = {};
  if (params) {
    sources[`modules.${name}`] = `${dir}/parameters`;
    await Promise.all(
      params.map(async (p) => {
        const v = await ctx.fs.readText(`${dir}/parameters/${p}`);
        if (v !== null) parameters[p] = v.trim();
      }),
    );
  }
  return { loaded: present, parameters };
}

export async function detectKvm(
  ctx: DetectContext,
  options: ProbeOptions & { live: boolean; runner?: CommandRunner | undefined },
): Promise<KvmReport> {
  const sources: Sources = {};
  const moduleDirs = (await ctx.fs.readDir("/sys/module")) ?? [];
  // Other KVM flavours (kvm_pvm, kvm_hygon...) show up too, so the report says what this host runs.
  const names = [...new Set([...KVM_MODULES, ...moduleDirs.filter((m) => /^kvm_\w+$/.test(m))])];
  const [modules, devCaptured, devKvm, vhostNet, tun] = await Promise.all([
    Promise.all(names.map(async (n) => [n, await readModule(ctx, n, sources)] as const)),
    ctx.fs.exists("/dev"),
    ctx.fs.exists("/dev/kvm"),
    ctx.fs.exists("/dev/vhost-net"),
    ctx.fs.exists("/dev/net/tun"),
  ]);
  // Snapshots without /dev say nothing about device nodes: unknown, not absent.
  const known = (present: boolean) => (devCaptured ? present : null);
  sources.devKvm = "/dev/kvm";
  sources.vhostNet = "/dev/vhost-net";
  sources.tun = "/dev/net/tun";

  let probe: KvmProbe;
  if (!options.live) probe = notRun("not run: the report describes a snapshot, not this machine");
  else if (!devKvm) probe = notRun("not run: /dev/kvm does not exist");
  else if (!options.runner) probe = notRun("not run: no command runner given");
  else {
    probe = await runKvmProbe({
      runner: options.runner,
      mode: options.mode,
      kernel: options.kernel,
      cacheFile: options.cacheFile,
      timeoutMs: options.timeoutMs,
    });
  }
  return {
    modules: Object.fromEntries(modules),
    devKvm: {
      present: known(devKvm),
      accessible: !devKvm
        ? devCaptured
          ? "no"
          : "unknown"
        : options.live
          ? (await devKvmAccessible())
            ? "yes"
            : "no"
          : "unknown",
    },
    vhostNet: known(vhostNet),
    tun: known(tun),
    probe,
    sources,
  };
}

const notRun = (detail: string): KvmProbe => ({ verdict: "not-run", detail, stages: [], cached: false });
