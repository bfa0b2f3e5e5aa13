// `kvmstrap vm deploy|list|show|start|stop|delete|console`: VMs through the libvirt port. Bad input
// (unknown image, missing bridge, name taken, corrupt image) exits 2 with one line; a failed deploy
// or an unreachable libvirtd exits 1. Progress goes to stderr, or as JSON lines with --json.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { EventBus, formatEvent, jsonLinesSink } from "../apply/events.js";
import { detectHost } from "../detect/index.js";
import { ExecaRunner } from "../host/commands.js";
import { RootedHostFs } from "../host/fs.js";
import { DEFAULT_VM_DIR, deployVm, libvirtDown, type VmSpec } from "../vm/deploy.js";
import type { VmNic } from "../vm/domain-xml.js";
import { DEFAULT_CACHE_DIR } from "../vm/images.js";
import { VirshLibvirt } from "../vm/libvirt.js";
import { deleteVm, listVms, showVm, startVm, stopVm } from "../vm/manage.js";
import { ReadinessError, waitReady } from "../vm/readiness.js";
import { DeployError, INPUT_CODES } from "../vm/vm-state.js";
import { parse } from "./args.js";
import { EXIT, UsageError } from "./errors.js";

export const DEFAULT_URI = "qemu:///system";

export const VM_HELP = `Usage: kvmstrap vm <deploy|list|show|start|stop|delete|console> [options]

  deploy --name N --image I   Deploy a VM: a qcow2 overlay on the base image (never a copy), a
                              cloud-init NoCloud seed, a q35 domain; started at once. Deploying the
                              same spec again converges (starts it if stopped), never duplicates.
  list                        The domains on the connection, and which kvmstrap deployed
  show NAME                   State, addresses, files and backing image of one VM
  start NAME | stop NAME      Start; ACPI shutdown (--force: power off)
  delete NAME                 Remove the domain, its overlay, seed and logs (never the base image)
  console NAME                Attach to the serial console (virsh console; Ctrl+] detaches)

Deploy options:
  --name N          VM name (also the guest's host name unless --hostname)
  --image I         Cached image name (kvmstrap image list) or a base image path
  --vcpus N         vCPUs (default 2)
  --memory MIB      Memory in MiB (default 2048)
  --disk GIB        Disk size in GiB (default 20; never smaller than the image)
  --network NET     Attach to libvirt network NET (repeatable; default "default" without --bridge)
  --bridge BR       Attach to host bridge BR (repeatable)
  --ssh-key FILE    Authorised OpenSSH public key(s) for the user (repeatable)
  --user NAME       Guest user (default "kvmstrap"), with passwordless sudo
  --hostname H      Guest host name (default: the VM name)
  --pin             Pin vCPUs and memory to one NUMA node (nearest its passthrough devices)
  --wait SECONDS    Then wait until ready: running, an address, cloud-init done (default: no wait)

Common options:
  --connect URI     libvirt URI (default ${DEFAULT_URI})
  --dir DIR         VM directory for overlays, seeds and logs (default ${DEFAULT_VM_DIR})
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

export async function vmCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    name: { type: "string" },
    image: { type: "string" },
    vcpus: { type: "string" },
    memory: { type: "string" },
    disk: { type: "string" },
    network: { type: "string", multiple: true },
    bridge: { type: "string", multiple: true },
    "ssh-key": { type: "string", multiple: true },
    user: { type: "string" },
    hostname: { type: "string" },
    pin: { type: "boolean" },
    wait: { type: "string" },
    connect: { type: "string" },
    dir: { type: "string" },
    cache: { type: "string" },
    force: { type: "boolean" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  const [sub, arg, extra] = positionals;
  if (values.help || sub === "help" || sub === undefined) {
    process.stdout.write(VM_HELP);
    return sub === undefined && !values.help ? EXIT.usage : EXIT.ok;
  }
  if (extra) throw new UsageError(`unexpected argument "${extra}"`);
  const uri = values.connect ?? DEFAULT_URI;
  const dir = values.dir ?? DEFAULT_VM_DIR;
  const libvirt = new VirshLibvirt(uri);
  const json = Boolean(values.json);
  const print = (v: unknown) => process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  const needName = () => {
    if (!arg) throw new UsageError(`vm ${sub} needs a VM NAME`);
    return arg;
  };
  try {
    switch (sub) {
      case "deploy": {
        if (arg) throw new UsageError(`vm deploy takes --name, not "${arg}"`);
        if (!values.name) throw new UsageError("vm deploy needs --name N");
        if (!values.image) throw new UsageError("vm deploy needs --image I (a cached image name or a path)");
        const nics: VmNic[] = [
          ...(values.network ?? []).map((network): VmNic => ({ kind: "network", network })),
          ...(values.bridge ?? []).map((bridge): VmNic => ({ kind: "bridge", bridge })),
        ];
        if (nics.length === 0) nics.push({ kind: "network", network: "default" });
        const spec: VmSpec = {
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
          nics,
          pin: Boolean(values.pin),
        };
        const bus = new EventBus();
        bus.subscribe(
          json
            ? jsonLinesSink(process.stdout)
            : (e) => {
                const line = formatEvent(e);
                if (line) process.stderr.write(`${line}\n`);
              },
        );
        // Fail fast (and clearly) on a dead libvirtd before detection runs the KVM probe.
        await libvirt.version().catch((e: unknown) => {
          throw libvirtDown(e, uri);
        });
        const report = await detectHost({
          fs: new RootedHostFs("/"),
          runner: new ExecaRunner(),
          probe: { mode: "auto" },
        });
        const r = await deployVm(spec, { libvirt, report, dir, imageCache: values.cache, bus });
        for (const w of r.warnings) process.stderr.write(`kvmstrap: warning: ${w}\n`);
        let ready: Awaited<ReturnType<typeof waitReady>> | undefined;
        if (values.wait) {
          ready = await waitReady(
            r.name,
            { libvirt, dir, bus },
            { timeoutMs: intFlag(values.wait, "--wait", 0) * 1000 },
          );
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
        // A serial console logged to a file (how kvmstrap defines it) has no pty for virsh console:
        // follow the log instead, read-only.
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
    if (e instanceof ReadinessError) {
      process.stderr.write(`kvmstrap: ${e.message}\n${e.tail ? `${e.tail}\n` : ""}`);
      return EXIT.failed;
    }
    throw e;
  }
}
