// An in-memory Libvirt for orchestration tests: domains, networks and leases held in maps, the same
// LibvirtError codes as the virsh adapter. `down` makes every call fail as a dead libvirtd does, and
// `failOn` makes one method fail once, to test that a deploy undoes what it created. Given a state
// file, the domains outlive the process (as libvirtd's do): loaded when constructed, saved atomically
// after every change, so a process killed mid-deploy leaves what it defined or started.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type {
  AddressSource,
  AgentExecResult,
  DhcpLease,
  DomainInterface,
  DomainState,
  DomainXmlOptions,
  Libvirt,
  LibvirtVersion,
  NetworkInfo,
  Volume,
} from "../../src/vm/libvirt.js";
import { LibvirtError } from "../../src/vm/libvirt.js";

type Domain = { xml: string; state: DomainState };

export class FakeLibvirt implements Libvirt {
  readonly uri = "test:///fake";
  readonly domains = new Map<string, Domain>();
  readonly networks = new Map<string, NetworkInfo>();
  readonly calls: string[] = [];
  down = false;
  failOn: string | null = null;
  addresses: Record<string, DomainInterface[]> = {};
  agentUp = new Set<string>();
  cloudInit: AgentExecResult = { exitCode: 0, signal: null, stdout: "status: done\n", stderr: "" };

  constructor(private readonly stateFile?: string) {
    if (stateFile && existsSync(stateFile)) {
      for (const [name, d] of Object.entries(
        JSON.parse(readFileSync(stateFile, "utf8")) as Record<string, Domain>,
      ))
        this.domains.set(name, d);
    }
  }

  private save() {
    if (!this.stateFile) return;
    const tmp = `${this.stateFile}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.domains)));
    renameSync(tmp, this.stateFile);
  }

  private call(what: string) {
    this.calls.push(what);
    if (this.down) {
      throw new LibvirtError("connect", "failed to connect to the hypervisor: Failed to connect socket");
    }
    if (this.failOn === what) {
      this.failOn = null;
      throw new LibvirtError("other", `${what} failed (injected)`);
    }
  }
  private dom(name: string): Domain {
    const d = this.domains.get(name);
    if (!d) throw new LibvirtError("no-domain", `Domain not found: no domain with matching name '${name}'`);
    return d;
  }

  async version(): Promise<LibvirtVersion> {
    this.call("version");
    return { library: "9.0.0" };
  }
  async defineDomain(xml: string): Promise<string> {
    this.call("defineDomain");
    const name = /<name>([^<]+)<\/name>/.exec(xml)?.[1] ?? "";
    if (!name) throw new LibvirtError("other", "XML error: missing domain name");
    const old = this.domains.get(name);
    this.domains.set(name, { xml, state: old?.state ?? "shut off" });
    this.save();
    return name;
  }
  async undefineDomain(name: string): Promise<void> {
    this.call("undefineDomain");
    this.dom(name);
    this.domains.delete(name);
    this.save();
  }
  async start(name: string): Promise<void> {
    this.call("start");
    const d = this.dom(name);
    if (d.state === "running") throw new LibvirtError("invalid-state", "Domain is already active");
    d.state = "running";
    this.save();
  }
  async destroy(name: string): Promise<void> {
    this.call("destroy");
    const d = this.dom(name);
    if (d.state !== "running") throw new LibvirtError("invalid-state", "domain is not running");
    d.state = "shut off";
    this.save();
  }
  async shutdown(name: string): Promise<void> {
    this.call("shutdown");
    this.dom(name).state = "shut off";
    this.save();
  }
  async domainState(name: string): Promise<DomainState> {
    this.call("domainState");
    return this.dom(name).state;
  }
  async listDomains(): Promise<{ name: string; state: DomainState }[]> {
    this.call("listDomains");
    return [...this.domains].map(([name, d]) => ({ name, state: d.state }));
  }
  async domainXml(name: string, options: DomainXmlOptions = {}): Promise<string> {
    this.call(options.securityInfo ? "domainXml:securityInfo" : "domainXml");
    const { xml } = this.dom(name);
    // As libvirt does: a graphics password only with --security-info.
    return options.securityInfo ? xml : xml.replace(/\s+passwd=(?:'[^']*'|"[^"]*")/g, "");
  }
  async updateDeviceLive(name: string): Promise<void> {
    this.call("updateDeviceLive");
    this.dom(name);
  }
  async domainExists(name: string): Promise<boolean> {
    this.call("domainExists");
    return this.domains.has(name);
  }
  async ifAddresses(name: string, source: AddressSource): Promise<DomainInterface[]> {
    this.call(`ifAddresses:${source}`);
    this.dom(name);
    if (source === "agent" && !this.agentUp.has(name)) throw new LibvirtError("agent", "agent not connected");
    return this.addresses[name] ?? [];
  }
  async agentCommand(): Promise<unknown> {
    throw new LibvirtError("agent", "not in the fake");
  }
  async agentPing(name: string): Promise<boolean> {
    this.call("agentPing");
    return this.agentUp.has(name);
  }
  async agentExec(name: string, file: string, args: readonly string[] = []): Promise<AgentExecResult> {
    this.call(`agentExec:${file} ${args.join(" ")}`);
    if (!this.agentUp.has(name)) throw new LibvirtError("agent", "agent not connected");
    return this.cloudInit;
  }
  async agentHostname(name: string): Promise<string> {
    return name;
  }
  private none(): never {
    throw new LibvirtError("other", "not in the fake");
  }
  async poolDefine(): Promise<string> {
    return this.none();
  }
  async poolBuild(): Promise<void> {
    this.none();
  }
  async poolStart(): Promise<void> {
    this.none();
  }
  async poolRefresh(): Promise<void> {
    this.none();
  }
  async poolDestroy(): Promise<void> {
    this.none();
  }
  async poolUndefine(): Promise<void> {
    this.none();
  }
  async poolExists(): Promise<boolean> {
    return false;
  }
  async volList(): Promise<Volume[]> {
    return [];
  }
  async volPath(): Promise<string> {
    return this.none();
  }
  async netDefine(): Promise<string> {
    return this.none();
  }
  async netStart(): Promise<void> {
    this.none();
  }
  async netDestroy(): Promise<void> {
    this.none();
  }
  async netUndefine(): Promise<void> {
    this.none();
  }
  async netAutostart(): Promise<void> {
    this.none();
  }
  async netList(): Promise<NetworkInfo[]> {
    this.call("netList");
    return [...this.networks.values()];
  }
  /** Network definitions by name (netXml answers from here). */
  readonly networkXmls = new Map<string, string>();
  async netXml(name: string): Promise<string> {
    this.call("netXml");
    const xml = this.networkXmls.get(name);
    if (xml === undefined)
      throw new LibvirtError("no-network", `Network not found: no network with matching name '${name}'`);
    return xml;
  }
  async netDhcpLeases(): Promise<DhcpLease[]> {
    return [];
  }

  // Snapshots, checkpoints and backups are exercised against the real libvirtd (test/e2e).
  async domainDisks(): Promise<never> {
    return this.none();
  }
  async snapshotCreate(): Promise<void> {
    this.none();
  }
  async snapshotNames(): Promise<string[]> {
    return this.none();
  }
  async snapshotXml(): Promise<string> {
    return this.none();
  }
  async snapshotDelete(): Promise<void> {
    this.none();
  }
  async blockCommitActive(): Promise<void> {
    this.none();
  }
  async backupBegin(): Promise<void> {
    this.none();
  }
  async jobInfo(): Promise<Record<string, string>> {
    return this.none();
  }
  async checkpointNames(): Promise<string[]> {
    return this.none();
  }
  async checkpointDelete(): Promise<void> {
    this.none();
  }
}
