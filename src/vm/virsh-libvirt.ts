// VirshLibvirt: the default adapter of the libvirt port. Every call is one `virsh -c URI ...` run
// through the CommandRunner (execa, LC_ALL=C); XML goes through a private temporary file. A failed
// run becomes a LibvirtError whose code is read from virsh's stderr.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type CommandRunner, ExecaRunner } from "../host/commands.js";
import type {
  AddressSource,
  AgentExecOptions,
  AgentExecResult,
  DhcpLease,
  DomainDisk,
  DomainInterface,
  DomainState,
  DomainXmlOptions,
  Libvirt,
  LibvirtVersion,
  NetworkInfo,
  Volume,
} from "./libvirt.js";
import { classifyVirshError, LibvirtError, virshErrorMessage } from "./libvirt-error.js";
import {
  agentReturn,
  parseDefinedName,
  parseDhcpLeases,
  parseDomainList,
  parseDomBlkList,
  parseDomIfAddr,
  parseExecStatus,
  parseJobInfo,
  parseNetList,
  parseVersion,
  parseVolList,
} from "./virsh-parse.js";

export type VirshOptions = { runner?: CommandRunner; timeoutMs?: number; virsh?: string };

export class VirshLibvirt implements Libvirt {
  private readonly runner: CommandRunner;
  private readonly timeoutMs: number;
  private readonly virsh: string;

  constructor(
    readonly uri = "qemu:///system",
    options: VirshOptions = {},
  ) {
    this.runner = options.runner ?? new ExecaRunner();
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.virsh = options.virsh ?? "virsh";
  }

  /** Runs `virsh -c URI ARGS...` and returns stdout; throws LibvirtError on any failure. */
  async run(args: readonly string[], timeoutMs = this.timeoutMs): Promise<string> {
    const argv = ["-c", this.uri, ...args];
    const command = [this.virsh, ...argv];
    let r: Awaited<ReturnType<CommandRunner["run"]>>;
    try {
      r = await this.runner.run(this.virsh, argv, { timeoutMs });
    } catch (e) {
      throw new LibvirtError("other", `could not run virsh: ${(e as Error).message}`, command);
    }
    if (r.timedOut) throw new LibvirtError("timeout", `virsh ${args[0]} timed out`, command, r.stderr);
    if (r.exitCode === 0) return r.stdout;
    if (r.exitCode === undefined) {
      throw new LibvirtError("other", `could not run ${this.virsh} (is libvirt-clients installed?)`, command);
    }
    const code = classifyVirshError(r.stderr);
    throw new LibvirtError(code, virshErrorMessage(r.stderr), command, r.stderr, r.exitCode);
  }

  private async withXmlFile<T>(xml: string, fn: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(tmpdir(), "kvmstrap-virsh-"));
    try {
      const file = path.join(dir, "object.xml");
      await writeFile(file, xml, { mode: 0o600 });
      return await fn(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async define(verb: string, kind: "Domain" | "Network" | "Pool", xml: string): Promise<string> {
    const out = await this.withXmlFile(xml, (file) => this.run([verb, file]));
    const name = parseDefinedName(out, kind) ?? /<name>([^<]+)<\/name>/.exec(xml)?.[1];
    if (!name) throw new LibvirtError("other", `cannot tell the ${kind.toLowerCase()} name from: ${out}`);
    return name;
  }

  private async exists(args: string[], missing: LibvirtError["code"]): Promise<boolean> {
    try {
      await this.run(args);
      return true;
    } catch (e) {
      if (e instanceof LibvirtError && e.code === missing) return false;
      throw e;
    }
  }

  async version(): Promise<LibvirtVersion> {
    return parseVersion(await this.run(["version"]));
  }

  defineDomain(xml: string): Promise<string> {
    return this.define("define", "Domain", xml);
  }
  async undefineDomain(name: string, options: { nvram?: boolean } = {}): Promise<void> {
    await this.run(["undefine", name, ...(options.nvram ? ["--nvram"] : [])]);
  }
  async start(name: string): Promise<void> {
    await this.run(["start", name]);
  }
  async destroy(name: string): Promise<void> {
    await this.run(["destroy", name]);
  }
  async shutdown(name: string): Promise<void> {
    await this.run(["shutdown", name]);
  }
  async domainState(name: string): Promise<DomainState> {
    return (await this.run(["domstate", name])).trim();
  }
  async listDomains(): Promise<{ name: string; state: DomainState }[]> {
    return parseDomainList(await this.run(["list", "--all"]));
  }
  domainXml(name: string, options: DomainXmlOptions = {}): Promise<string> {
    return this.run([
      "dumpxml",
      name,
      ...(options.inactive ? ["--inactive"] : []),
      ...(options.securityInfo ? ["--security-info"] : []),
    ]);
  }
  async updateDeviceLive(name: string, xml: string): Promise<void> {
    // Through a private file (0600, removed after): the XML may hold a console ticket.
    await this.withXmlFile(xml, (file) => this.run(["update-device", name, file, "--live"]));
  }
  domainExists(name: string): Promise<boolean> {
    return this.exists(["domuuid", name], "no-domain");
  }
  async ifAddresses(name: string, source: AddressSource): Promise<DomainInterface[]> {
    return parseDomIfAddr(await this.run(["domifaddr", name, "--source", source]));
  }

  async agentCommand(name: string, command: string, args?: object, timeoutSeconds = 10): Promise<unknown> {
    const request = JSON.stringify(args ? { execute: command, arguments: args } : { execute: command });
    const argv = ["qemu-agent-command", name, request, "--timeout", String(timeoutSeconds)];
    const out = await this.run(argv, timeoutSeconds * 1000 + 10_000);
    try {
      return agentReturn(out);
    } catch (e) {
      throw new LibvirtError("agent", (e as Error).message, [this.virsh, ...argv]);
    }
  }

  async agentPing(name: string): Promise<boolean> {
    try {
      await this.agentCommand(name, "guest-ping", undefined, 5);
      return true;
    } catch (e) {
      if (e instanceof LibvirtError && (e.code === "agent" || e.code === "timeout")) return false;
      throw e;
    }
  }

  async agentExec(
    name: string,
    file: string,
    args: readonly string[] = [],
    options: AgentExecOptions = {},
  ): Promise<AgentExecResult> {
    const request: Record<string, unknown> = { path: file, arg: args, "capture-output": true };
    if (options.input !== undefined) request["input-data"] = Buffer.from(options.input).toString("base64");
    const started = (await this.agentCommand(name, "guest-exec", request)) as { pid?: number };
    if (typeof started?.pid !== "number") throw new LibvirtError("agent", "guest-exec returned no pid");
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      const status = parseExecStatus(
        await this.agentCommand(name, "guest-exec-status", { pid: started.pid }),
      );
      if (status) return status;
      if (Date.now() > deadline) {
        throw new LibvirtError(
          "timeout",
          `guest-exec of ${file} still running after ${options.timeoutMs} ms`,
        );
      }
      await sleep(250);
    }
  }

  async agentHostname(name: string): Promise<string> {
    const ret = (await this.agentCommand(name, "guest-get-host-name")) as { "host-name"?: string };
    if (typeof ret?.["host-name"] !== "string") throw new LibvirtError("agent", "no host-name in reply");
    return ret["host-name"];
  }

  poolDefine(xml: string): Promise<string> {
    return this.define("pool-define", "Pool", xml);
  }
  async poolBuild(name: string): Promise<void> {
    await this.run(["pool-build", name]);
  }
  async poolStart(name: string): Promise<void> {
    await this.run(["pool-start", name]);
  }
  async poolRefresh(name: string): Promise<void> {
    await this.run(["pool-refresh", name]);
  }
  async poolDestroy(name: string): Promise<void> {
    await this.run(["pool-destroy", name]);
  }
  async poolUndefine(name: string): Promise<void> {
    await this.run(["pool-undefine", name]);
  }
  poolExists(name: string): Promise<boolean> {
    return this.exists(["pool-uuid", name], "no-pool");
  }
  async volList(pool: string): Promise<Volume[]> {
    return parseVolList(await this.run(["vol-list", pool]));
  }
  async volPath(pool: string, volume: string): Promise<string> {
    return (await this.run(["vol-path", "--pool", pool, volume])).trim();
  }

  netDefine(xml: string): Promise<string> {
    return this.define("net-define", "Network", xml);
  }
  async netStart(name: string): Promise<void> {
    await this.run(["net-start", name]);
  }
  async netDestroy(name: string): Promise<void> {
    await this.run(["net-destroy", name]);
  }
  async netUndefine(name: string): Promise<void> {
    await this.run(["net-undefine", name]);
  }
  async netAutostart(name: string, on: boolean): Promise<void> {
    await this.run(on ? ["net-autostart", name] : ["net-autostart", "--disable", name]);
  }
  async netList(): Promise<NetworkInfo[]> {
    return parseNetList(await this.run(["net-list", "--all"]));
  }
  netXml(name: string): Promise<string> {
    return this.run(["net-dumpxml", name]);
  }
  async netDhcpLeases(network: string): Promise<DhcpLease[]> {
    return parseDhcpLeases(await this.run(["net-dhcp-leases", network]));
  }

  async domainDisks(name: string): Promise<DomainDisk[]> {
    return parseDomBlkList(await this.run(["domblklist", name, "--details"]));
  }
  async snapshotCreate(name: string, xml: string, options: { quiesce: boolean }): Promise<void> {
    const flags = ["--disk-only", "--atomic", ...(options.quiesce ? ["--quiesce"] : [])];
    await this.withXmlFile(xml, (file) => this.run(["snapshot-create", name, "--xmlfile", file, ...flags]));
  }
  async snapshotNames(name: string): Promise<string[]> {
    return lines(await this.run(["snapshot-list", name, "--name", "--topological"]));
  }
  snapshotXml(name: string, snapshot: string): Promise<string> {
    return this.run(["snapshot-dumpxml", name, "--snapshotname", snapshot]);
  }
  async snapshotDelete(
    name: string,
    snapshot: string,
    options: { metadataOnly?: boolean } = {},
  ): Promise<void> {
    const flags = options.metadataOnly ? ["--metadata"] : [];
    await this.run(["snapshot-delete", name, "--snapshotname", snapshot, ...flags], 600_000);
  }
  async blockCommitActive(name: string, disk: string): Promise<void> {
    await this.run(["blockcommit", name, disk, "--active", "--pivot", "--wait"], 3_600_000);
  }
  async backupBegin(name: string, backupXml: string, checkpointXml?: string): Promise<void> {
    await this.withXmlFile(backupXml, async (backup) => {
      if (checkpointXml === undefined) return this.run(["backup-begin", name, "--backupxml", backup]);
      return this.withXmlFile(checkpointXml, (cp) =>
        this.run(["backup-begin", name, "--backupxml", backup, "--checkpointxml", cp]),
      );
    });
  }
  async jobInfo(name: string, completed = false): Promise<Record<string, string>> {
    return parseJobInfo(await this.run(["domjobinfo", name, ...(completed ? ["--completed"] : [])]));
  }
  async checkpointNames(name: string): Promise<string[]> {
    return lines(await this.run(["checkpoint-list", name, "--name", "--topological"]));
  }
  async checkpointDelete(
    name: string,
    checkpoint: string,
    options: { metadataOnly?: boolean } = {},
  ): Promise<void> {
    await this.run(["checkpoint-delete", name, checkpoint, ...(options.metadataOnly ? ["--metadata"] : [])]);
  }
}

const lines = (out: string): string[] =>
  out
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
