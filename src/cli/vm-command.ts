// `kvmstrap vm deploy|list|show|start|stop|delete|console`: VMs through the libvirt port. Bad input
// (unknown image, missing bridge, name taken, corrupt image) exits 2 with one line; a failed deploy
// or an unreachable libvirtd exits 1. Progress goes to stderr, or as JSON lines with --json.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { AnswerError, type AnswerSource, readAnswerSource } from "../answer/load.js";
import { parsePath } from "../answer/positions.js";
import { libvirtAt, stateDirOf } from "../app/adapters.js";
import { detectMachine } from "../app/inspect.js";
import { thisHost } from "../app/machine.js";
import { EventBus, formatEvent, jsonLinesSink } from "../apply/events.js";
import type { HostReport } from "../detect/types.js";
import { DEFAULT_VM_DIR, deployVm, libvirtDown } from "../vm/deploy.js";
import { type ConsoleFlags, vmSpecFromEntry, vmSpecsFromAnswer } from "../vm/from-answer.js";
import { DEFAULT_CACHE_DIR } from "../vm/images.js";
import { type Libvirt, LibvirtError } from "../vm/libvirt.js";
import { libvirtRemedy } from "../vm/libvirt-error.js";
import { deleteVm, deployMany, listVms, showVm, startVm, stopVm } from "../vm/manage.js";
import { startPhoneHomeFor } from "../vm/phone-home.js";
import { ReadinessError, waitReady } from "../vm/readiness.js";
import { DeployError, INPUT_CODES } from "../vm/vm-state.js";
import { type OptionTable, parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const DEFAULT_URI = "qemu:///system";

export const VM_HELP = `Usage: kvmstrap vm <deploy|list|show|start|stop|delete|console|snapshot|backup|restore|migrate|fill-disk> [options]

  deploy --name N --image I   Deploy a VM: a qcow2 overlay on the base image (never a copy), a
                              cloud-init NoCloud seed, a q35 domain; started at once. Deploying the
                              same spec again converges (starts it if stopped), never duplicates.
  deploy --answer FILE        Deploy every VM in the answer file's vms: section, --concurrency at a
                              time. Its match rules resolve on this host; errors name file:line:col.
                              Deploying the same file again converges, never duplicates.
                              A deploy is journaled where apply journals (--state-dir, default
                              /var/lib/kvmstrap): killed, it converges when run again, and
                              "kvmstrap undo" reverses the last deploy or apply, newest first.
  list                        The domains on the connection, and which kvmstrap deployed
  show NAME                   State, addresses, files and backing image of one VM
  start NAME | stop NAME      Start; ACPI shutdown (--force: power off)
  delete NAME                 Remove the domain, its overlay, seed and logs (never the base image)
  console NAME                Attach to the serial console (virsh console; Ctrl+] detaches)
  console NAME --vnc|--spice  A TLS console as a virt-viewer .vv file or URI
                              (--ticket: with a one-time password, locked consoles)
                              (kvmstrap vm console NAME --vnc --help)
  snapshot create|list|revert|delete NAME [SNAP]
                              External disk-only snapshots (vm snapshot --help)
  backup NAME --to DIR        Full or --incremental backup with checkpoints (vm backup --help)
  restore DIR --name NEW      A VM rebuilt from a backup chain (vm restore --help)
  migrate NAME --to HOST      Live migration over TLS, refused first if HOST
                              lacks what the VM needs (vm migrate --help)
  fill-disk --image I --disk JSON
                              A VM's image onto its blank disk on a cluster store
                              (the plan runs it; vm fill-disk --help)

Deploy options:
  --name N          VM name (also the guest's host name unless --hostname)
  --image I         Cached image name (kvmstrap image list) or a base image path
  --vcpus N         vCPUs (default 2)
  --memory MIB      Memory in MiB (default 2048)
  --disk GIB        Disk size in GiB (default 20; never smaller than the image)
  --network NET     Attach to libvirt network NET (repeatable; default "default" without --bridge)
  --bridge BR       Attach to host bridge BR (repeatable)
  --ovs BR[:vlan=N|:trunk=N,M]
                    Attach to Open vSwitch bridge BR: an access port on VLAN N, or a trunk of
                    the VLANs listed (repeatable)
  --ssh-key FILE    Authorised OpenSSH public key(s) for the user (repeatable)
  --user NAME       Guest user (default "kvmstrap"), with passwordless sudo
  --hostname H      Guest host name (default: the VM name)
  --pin             Pin vCPUs and memory to one NUMA node (nearest its passthrough devices)
  --console vnc|spice
                    A remote console as the answer's consoles: section gives one: TLS with the
                    host's PKI (kvmstrap pki), VNC clients need its client certificate
                    (repeatable: both; qemu.conf's TLS settings come from kvmstrap apply)
  --console-listen ADDR
                    The address the console listens on (default: the host's management address;
                    a wildcard, or an address off the management network, is refused)
  --console-tickets The console stays locked until "kvmstrap vm console NAME --ticket" sets a
                    one-time password (as consoles.tickets: true)
  --wait SECONDS    Then wait until ready: running, an address, cloud-init done (default: no wait)

Deploy from an answer file (instead of the flags above):
  --answer FILE     The answer file; every entry of its vms: section is deployed
  --concurrency N   Deploys in flight at once (default 2)
  --wait SECONDS    Then wait until each is ready (as above)

Common options:
  --connect URI     libvirt URI (default ${DEFAULT_URI})
  --dir DIR         VM directory for overlays, seeds and logs (default ${DEFAULT_VM_DIR})
  --state-dir DIR   deploy: the journal "kvmstrap undo" reads (default /var/lib/kvmstrap, as apply)
  --cache DIR       Image cache (default ${DEFAULT_CACHE_DIR})
  --force           stop: power off instead of an ACPI shutdown
  --json            Print results as JSON (deploy: progress as JSON lines on stdout)
  -h, --help        Print this help

Exit codes: 0 success, 1 failed (libvirtd unreachable, deploy or readiness failed),
2 usage or input error (unknown image, missing bridge or network, name taken, corrupt image).
`;

const intFlag = (v: string | undefined, flag: string, dflt: number): number => {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number (got "${v}")`);
  return n;
};

async function readKeys(files: string[]): Promise<string[]> {
  const keys: string[] = [];
  for (const f of files) {
    const text = await readFile(f, "utf8").catch((e: Error) => {
      throw new UsageError(`--ssh-key ${f}: ${e.message}`);
    });
    keys.push(
      ...text
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#")),
    );
  }
  return keys;
}

/** The flag a path of the vms: entry comes from ("user.sshKeys[1]" is the second --ssh-key key). */
function flagOf(entryPath: string): string {
  const flags: [RegExp, string][] = [
    [/^name/, "--name"],
    [/^image/, "--image"],
    [/^vcpus/, "--vcpus"],
    [/^memoryMiB/, "--memory"],
    [/^diskGiB/, "--disk"],
    [/^user\.sshKeys/, "--ssh-key"],
    [/^user/, "--user"],
    [/^hostname/, "--hostname"],
    [/^nics/, "--network/--bridge/--ovs"],
    [/^pin/, "--pin"],
    [/^consoles\.listen/, "--console-listen"],
    [/^consoles\.tickets/, "--console-tickets"],
    [/^consoles/, "--console"],
  ];
  return flags.find(([re]) => re.test(entryPath))?.[1] ?? (entryPath || "vm deploy");
}

/** Replacements for the real libvirt connection and host detection (tests). */
export type VmCommandDeps = { libvirt?: Libvirt; report?: HostReport; sysClassNet?: string };

/** --ovs BR, BR:vlan=N or BR:trunk=N,M as the answer's NIC entry (the schema checks the values). */
function ovsNicFlag(v: string): Record<string, unknown> {
  const m = /^([^:]+)(?::(vlan|trunk)=([0-9,]+))?$/.exec(v);
  if (!m?.[1]) throw new UsageError(`--ovs takes BR, BR:vlan=N or BR:trunk=N,M, not "${v}"`);
  if (m[2] === "vlan") return { ovs: m[1], vlan: Number(m[3]) };
  if (m[2] === "trunk") return { ovs: m[1], trunk: (m[3] ?? "").split(",").filter(Boolean).map(Number) };
  return { ovs: m[1] };
}

/** --console vnc|spice (repeatable) and --console-listen ADDR as the answer's consoles: for one VM. */
function consoleFlags(v: {
  console?: string[];
  "console-listen"?: string;
  "console-tickets"?: boolean;
}): ConsoleFlags | undefined {
  const kinds = v.console ?? [];
  for (const k of kinds)
    if (k !== "vnc" && k !== "spice") throw new UsageError(`--console takes vnc or spice, not "${k}"`);
  for (const f of ["console-listen", "console-tickets"] as const)
    if (v[f] !== undefined && !kinds.length)
      throw new UsageError(`--${f} needs --console vnc or --console spice`);
  if (!kinds.length) return undefined;
  return {
    kinds: kinds as ConsoleFlags["kinds"],
    ...(v["console-listen"] !== undefined ? { listen: v["console-listen"] } : {}),
    ...(v["console-tickets"] ? { tickets: true } : {}),
  };
}

/** Flags that describe one VM, which --answer replaces. */
const SPEC_FLAGS = [
  "name",
  "image",
  "vcpus",
  "memory",
  "disk",
  "network",
  "bridge",
  "ovs",
  "ssh-key",
  "user",
  "hostname",
  "pin",
  "console",
  "console-listen",
  "console-tickets",
] as const;

export const VM_OPTIONS = {
  answer: { type: "string" },
  concurrency: { type: "string" },
  name: { type: "string" },
  image: { type: "string" },
  vcpus: { type: "string" },
  memory: { type: "string" },
  disk: { type: "string" },
  network: { type: "string", multiple: true },
  bridge: { type: "string", multiple: true },
  ovs: { type: "string", multiple: true },
  "ssh-key": { type: "string", multiple: true },
  user: { type: "string" },
  hostname: { type: "string" },
  pin: { type: "boolean" },
  console: { type: "string", multiple: true },
  "console-listen": { type: "string" },
  "console-tickets": { type: "boolean" },
  wait: { type: "string" },
  connect: { type: "string" },
  dir: { type: "string" },
  "state-dir": { type: "string" },
  cache: { type: "string" },
  force: { type: "boolean" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const satisfies OptionTable;

export async function vmCommand(argv: string[], inject: VmCommandDeps = {}): Promise<number> {
  // A VNC or SPICE console has its own options (vm-console-command.ts); the serial one stays here.
  if (argv[0] === "console" && argv.some((a) => a === "--vnc" || a === "--spice"))
    return (await import("./vm-console-command.js")).vmConsoleCommand(argv.slice(1));
  if (argv[0] === "migrate") return (await import("./vm-migrate-command.js")).vmMigrateCommand(argv.slice(1));
  if (argv[0] === "fill-disk")
    return (await import("./vm-fill-disk-command.js")).vmFillDiskCommand(argv.slice(1));
  // Snapshots, backups and restores have their own options (vm-protect-command.ts).
  const protect = argv[0] === "snapshot" || argv[0] === "backup" || argv[0] === "restore" ? argv[0] : null;
  if (protect) {
    const m = await import("./vm-protect-command.js");
    const run = { snapshot: m.vmSnapshotCommand, backup: m.vmBackupCommand, restore: m.vmRestoreCommand }[
      protect
    ];
    return run(argv.slice(1));
  }
  const { values, positionals } = parse(argv, VM_OPTIONS);
  const [sub, arg, extra] = positionals;
  if (values.help || sub === "help" || sub === undefined) {
    process.stdout.write(VM_HELP);
    return sub === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const uri = values.connect ?? DEFAULT_URI;
  const dir = values.dir ?? DEFAULT_VM_DIR;
  // One journal for apply and deploy (stateDirOf): "kvmstrap undo" finds the last run of either.
  const stateDir = stateDirOf("/", values["state-dir"]);
  if (values["state-dir"] !== undefined && sub !== "deploy")
    throw new UsageError("--state-dir applies to vm deploy only");
  const libvirt = inject.libvirt ?? libvirtAt(uri);
  const json = Boolean(values.json);
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  const needName = () => {
    if (!arg) throw new UsageError(`vm ${sub} needs a VM NAME`);
    return arg;
  };
  const progress = () => {
    const bus = new EventBus();
    bus.subscribe(
      json
        ? jsonLinesSink(process.stdout)
        : (e) => {
            const line = formatEvent(e);
            if (line) process.stderr.write(`${line}\n`);
          },
    );
    return bus;
  };
  const hostReport = async (): Promise<HostReport> => {
    // Fail fast (and clearly) on a dead libvirtd before detection runs the KVM probe.
    await libvirt.version().catch((e: unknown) => {
      throw libvirtDown(e, uri);
    });
    return inject.report ?? (await detectMachine(thisHost(), { mode: "auto" }));
  };
  try {
    switch (sub) {
      case "deploy": {
        if (values.answer !== undefined) {
          if (arg) throw new UsageError(`vm deploy --answer takes no NAME (got "${arg}")`);
          const clash = SPEC_FLAGS.find((f) => values[f] !== undefined);
          if (clash)
            throw new UsageError(`--answer and --${clash} cannot be combined: the file names the VMs`);
          const concurrency = intFlag(values.concurrency, "--concurrency", 2);
          const waitS = values.wait === undefined ? undefined : intFlag(values.wait, "--wait", 0);
          // The file first: a schema error needs neither libvirtd nor detection.
          const source = await readAnswerSource(values.answer);
          return await deployAnswer(source, {
            concurrency,
            waitS,
            libvirt,
            dir,
            stateDir,
            cache: values.cache,
            json,
            bus: progress(),
            report: await hostReport(),
            sysClassNet: inject.sysClassNet,
          });
        }
        if (values.concurrency !== undefined) throw new UsageError("--concurrency applies to --answer only");
        if (arg) throw new UsageError(`vm deploy takes --name, not "${arg}"`);
        if (!values.name) throw new UsageError("vm deploy needs --name N");
        if (!values.image) throw new UsageError("vm deploy needs --image I (a cached image name or a path)");
        // The flags make one vms: entry of the answer schema: the same grammar and rules as a file.
        const entry = {
          name: values.name,
          image: values.image,
          vcpus: intFlag(values.vcpus, "--vcpus", 2),
          memoryMiB: intFlag(values.memory, "--memory", 2048),
          diskGiB: intFlag(values.disk, "--disk", 20),
          user: {
            name: values.user ?? "kvmstrap",
            sshKeys: await readKeys(values["ssh-key"] ?? []),
            sudo: true,
          },
          ...(values.hostname ? { hostname: values.hostname } : {}),
          nics: [
            ...(values.network ?? []).map((network) => ({ network })),
            ...(values.bridge ?? []).map((bridge) => ({ bridge })),
            ...(values.ovs ?? []).map(ovsNicFlag),
          ] as Record<string, unknown>[],
          pin: Boolean(values.pin),
        };
        if (entry.nics.length === 0) entry.nics.push({ network: "default" });
        const bus = progress();
        const report = await hostReport();
        const resolved = vmSpecFromEntry(entry, report, {}, consoleFlags(values));
        if (!resolved.spec) {
          const e = resolved.errors[0];
          throw new UsageError(`${flagOf(e?.path ?? "")}: ${e?.message ?? "invalid"}`);
        }
        const spec = resolved.spec;
        // --wait follows phone_home too: a server where the VM's network reaches this host.
        const home = values.wait ? await startPhoneHomeFor([spec], libvirt) : undefined;
        if (home?.note) process.stderr.write(`kvmstrap: note: ${home.note}\n`);
        const r = await deployVm(spec, {
          libvirt,
          report,
          dir,
          stateDir,
          imageCache: values.cache,
          bus,
          ...(inject.sysClassNet ? { sysClassNet: inject.sysClassNet } : {}),
          ...(home?.server ? { phoneHome: { url: home.server.url } } : {}),
        });
        for (const w of r.warnings) process.stderr.write(`kvmstrap: warning: ${w}\n`);
        let ready: Awaited<ReturnType<typeof waitReady>> | undefined;
        if (values.wait) {
          ready = await waitReady(
            r.name,
            { libvirt, dir, bus },
            {
              timeoutMs: intFlag(values.wait, "--wait", 0) * 1000,
              // A converged VM phoned home when it first booted; it will not again.
              ...(home?.server && !r.converged ? { phoneHome: home.server } : {}),
            },
          );
          await home?.server?.close();
        }
        await bus.drain(5000);
        if (json) print({ type: "result", deploy: r, ready });
        else {
          process.stdout.write(
            `${r.name}: ${r.converged ? "already deployed from this spec (converged)" : "deployed and started"}` +
              ` (${r.domainType}); serial console log ${r.serialLog}\n`,
          );
          for (const t of ready?.timeline ?? []) {
            process.stdout.write(
              `  ${t.stage.padEnd(10)} +${(t.durationMs / 1000).toFixed(1)} s ${t.detail ?? ""}\n`,
            );
          }
        }
        return EXIT.ok;
      }
      case "list": {
        if (arg) throw new UsageError(`vm list takes no arguments (got "${arg}")`);
        const vms = await listVms({ libvirt, dir });
        if (json) print(vms);
        else if (vms.length === 0) process.stdout.write("no VMs\n");
        else {
          const w = Math.max(4, ...vms.map((v) => v.name.length));
          process.stdout.write(`${"NAME".padEnd(w)}  ${"STATE".padEnd(10)}  KVMSTRAP\n`);
          for (const v of vms) {
            process.stdout.write(`${v.name.padEnd(w)}  ${v.state.padEnd(10)}  ${v.managed ? "yes" : "no"}\n`);
          }
        }
        return EXIT.ok;
      }
      case "show": {
        const d = await showVm(needName(), { libvirt, dir });
        if (json) print(d);
        else {
          const rows: [string, string][] = [
            ["name", d.name],
            ["state", d.state],
            ["deployed by kvmstrap", d.managed ? "yes" : "no"],
            ["addresses", d.addresses.join(", ") || "-"],
          ];
          if (d.record) {
            rows.push(
              ["domain type", d.record.domainType],
              ["overlay", d.record.overlay],
              ["backing image", d.backingFile ?? d.record.base],
              ["seed", `${d.record.seed} (instance-id ${d.record.instanceId})`],
              ["serial log", d.record.serialLog],
            );
          }
          for (const [k, v] of rows) process.stdout.write(`${k.padEnd(21)} ${v}\n`);
        }
        return EXIT.ok;
      }
      case "start": {
        const name = needName();
        const was = await startVm(name, { libvirt, dir });
        process.stdout.write(`${name}: ${was === "running" ? "already running" : "started"}\n`);
        return EXIT.ok;
      }
      case "stop": {
        const name = needName();
        await stopVm(name, { libvirt, dir }, { force: Boolean(values.force) });
        process.stdout.write(`${name}: ${values.force ? "powered off" : "shutdown requested"}\n`);
        return EXIT.ok;
      }
      case "delete": {
        const r = await deleteVm(needName(), { libvirt, dir });
        if (json) print(r);
        else {
          process.stdout.write(`${r.name}: deleted (${r.removed.length} files removed)\n`);
          if (r.keptBase) process.stdout.write(`  base image kept: ${r.keptBase}\n`);
        }
        return EXIT.ok;
      }
      case "console": {
        const name = needName();
        const xml = await libvirt.domainXml(name);
        // kvmstrap's VMs have a pty serial (with a log file): virsh console. A serial of type file
        // only (a domain defined elsewhere) has no pty: follow its file instead, read-only.
        const file = /<serial type='file'>\s*<source path='([^']+)'/.exec(xml)?.[1];
        const [cmd, args] = file
          ? ["tail", ["-n", "100", "-F", file]]
          : ["virsh", ["-c", uri, "console", name]];
        if (file)
          process.stderr.write(
            `kvmstrap: ${name}'s console is logged to ${file}; following it (Ctrl+C ends)\n`,
          );
        return await new Promise<number>((resolve) => {
          const child = spawn(cmd, args, { stdio: "inherit" });
          child.on("error", (e) => {
            process.stderr.write(`kvmstrap: cannot run ${cmd}: ${e.message}\n`);
            resolve(EXIT.failed);
          });
          child.on("exit", (code, signal) =>
            resolve(code === 0 || signal === "SIGINT" ? EXIT.ok : EXIT.failed),
          );
        });
      }
      default:
        throw new UsageError(`unknown vm subcommand "${sub}"`);
    }
  } catch (e) {
    if (e instanceof DeployError) {
      process.stderr.write(`kvmstrap: ${e.message}\n${e.remediation ? `  fix: ${e.remediation}\n` : ""}`);
      return INPUT_CODES.has(e.code) ? EXIT.usage : EXIT.failed;
    }
    if (e instanceof LibvirtError) {
      // libvirt's own failures (a device the host lacks, a domain gone) are not kvmstrap bugs.
      const fix = libvirtRemedy(e.code);
      process.stderr.write(`kvmstrap: libvirt: ${e.message}\n${fix ? `  fix: ${fix}\n` : ""}`);
      return EXIT.failed;
    }
    if (e instanceof ReadinessError) {
      process.stderr.write(`kvmstrap: ${e.message}\n${e.tail ? `${e.tail}\n` : ""}`);
      return EXIT.failed;
    }
    throw e;
  }
}

type AnswerDeploy = {
  concurrency: number;
  waitS: number | undefined;
  libvirt: Libvirt;
  dir: string;
  stateDir: string;
  cache: string | undefined;
  json: boolean;
  bus: EventBus;
  report: HostReport;
  sysClassNet: string | undefined;
};

/**
 * `vm deploy --answer FILE`: every VM of the vms: section, at most `concurrency` at once. Entries that
 * do not resolve on this host stop the run before anything is created (file:line:col, exit 2); a
 * deploy that fails does not stop the others. Exit 0 when all are deployed (or converged).
 */
async function deployAnswer(source: AnswerSource, o: AnswerDeploy): Promise<number> {
  const file = source.file;
  const { specs, errors } = vmSpecsFromAnswer(source.answer, o.report, {
    cacheDir: o.cache ?? DEFAULT_CACHE_DIR,
    baseDir: path.dirname(path.resolve(file)),
  });
  if (errors.length) {
    throw new AnswerError(
      errors.map((e) => {
        const pos = source.map.locate(parsePath(e.path));
        return { file, line: pos?.line ?? null, column: pos?.column ?? null, ...e };
      }),
    );
  }
  if (specs.length === 0) {
    if (o.json) process.stdout.write(`${JSON.stringify({ type: "result", file, deploys: [] })}\n`);
    else process.stdout.write(`${file}: no VMs in the vms: section\n`);
    return EXIT.ok;
  }
  // --wait follows phone_home too: one server where the VMs' networks reach this host.
  const home = o.waitS !== undefined ? await startPhoneHomeFor(specs, o.libvirt) : undefined;
  if (home?.note) process.stderr.write(`kvmstrap: note: ${home.note}\n`);
  const deps = {
    libvirt: o.libvirt,
    report: o.report,
    dir: o.dir,
    stateDir: o.stateDir,
    imageCache: o.cache,
    bus: o.bus,
    ...(o.sysClassNet ? { sysClassNet: o.sysClassNet } : {}),
    ...(home?.server ? { phoneHome: { url: home.server.url } } : {}),
  };
  const results = await deployMany(specs, deps, { concurrency: o.concurrency });
  const ready = new Map<string, Awaited<ReturnType<typeof waitReady>> | Error>();
  const waitS = o.waitS;
  if (waitS !== undefined) {
    await Promise.all(
      results.map(async (r) => {
        if (!r.ok) return;
        ready.set(
          r.name,
          await waitReady(
            r.name,
            { libvirt: o.libvirt, dir: o.dir, bus: o.bus },
            {
              timeoutMs: waitS * 1000,
              ...(home?.server && !r.result.converged ? { phoneHome: home.server } : {}),
            },
          ).catch((e: unknown) => e as Error),
        );
      }),
    );
    await home?.server?.close();
  }
  await o.bus.drain(5000);
  const failed = results.filter((r) => !r.ok || ready.get(r.name) instanceof Error);
  if (o.json) {
    const deploys = results.map((r) => {
      const w = ready.get(r.name);
      return r.ok
        ? {
            name: r.name,
            ok: !(w instanceof Error),
            deploy: r.result,
            ...(w instanceof Error ? { error: w.message } : w ? { ready: w } : {}),
          }
        : { name: r.name, ok: false, error: r.error.message };
    });
    process.stdout.write(`${JSON.stringify({ type: "result", file, deploys }, null, 2)}\n`);
  } else {
    for (const r of results) {
      if (!r.ok) {
        const fix =
          r.error instanceof DeployError && r.error.remediation ? ` (fix: ${r.error.remediation})` : "";
        process.stderr.write(`kvmstrap: ${r.name}: FAILED: ${r.error.message}${fix}\n`);
        continue;
      }
      for (const w of r.result.warnings) process.stderr.write(`kvmstrap: warning: ${r.name}: ${w}\n`);
      process.stdout.write(
        `${r.name}: ${r.result.converged ? "already deployed from this spec (converged)" : "deployed and started"}` +
          ` (${r.result.domainType})\n`,
      );
      const w = ready.get(r.name);
      if (w instanceof Error) process.stdout.write(`  not ready: ${w.message}\n`);
      else
        for (const t of w?.timeline ?? [])
          process.stdout.write(
            `  ${t.stage.padEnd(10)} +${(t.durationMs / 1000).toFixed(1)} s ${t.detail ?? ""}\n`,
          );
    }
    process.stdout.write(`${file}: ${results.length - failed.length} of ${results.length} VMs deployed\n`);
  }
  if (!failed.length) return EXIT.ok;
  const input = results.every(
    (r) => r.ok || (r.error instanceof DeployError && INPUT_CODES.has(r.error.code)),
  );
  return input && results.every((r) => !(ready.get(r.name) instanceof Error)) ? EXIT.usage : EXIT.failed;
}
