// The libvirt port: everything kvmstrap asks of libvirt (domains, storage pools and volumes,
// networks and their DHCP leases, the guest agent) as one typed interface. The default adapter,
// VirshLibvirt (virsh-libvirt.ts), drives `virsh`; tests can substitute a fake. Every failure
// surfaces as a LibvirtError with a stable code, never as a raw process error.

export type DomainState =
  | "running"
  | "idle"
  | "paused"
  | "in shutdown"
  | "shut off"
  | "crashed"
  | "pmsuspended"
  | "no state"
  | (string & {});

export type LibvirtVersion = {
  /** Version of the libvirt library virsh uses, e.g. "9.0.0". */
  library: string;
  /** The hypervisor behind the connection, e.g. { name: "QEMU", version: "7.2.22" }, if it reports one. */
  hypervisor?: { name: string; version: string };
};

export type IpAddress = { family: "ipv4" | "ipv6"; address: string; prefix: number };
export type AddressSource = "lease" | "agent" | "arp";
export type DomainInterface = { iface: string; mac: string; addrs: IpAddress[] };
export type NetworkInfo = { name: string; active: boolean; autostart: boolean; persistent: boolean };
export type DhcpLease = {
  expiry: string;
  mac: string;
  family: "ipv4" | "ipv6";
  address: string;
  prefix: number;
  hostname: string | null;
  clientId: string | null;
};
export type Volume = { name: string; path: string };
export type AgentExecResult = {
  exitCode: number | null;
  signal: number | null;
  stdout: string;
  stderr: string;
};
export type AgentExecOptions = { input?: string; timeoutMs?: number };
export type DomainXmlOptions = { inactive?: boolean; securityInfo?: boolean };
/** One row of `domblklist --details`: type file|block|network..., device disk|cdrom, target vda, source path or "-". */
export type DomainDisk = { type: string; device: string; target: string; source: string | null };

export interface Libvirt {
  readonly uri: string;
  version(): Promise<LibvirtVersion>;

  /** Defines (or redefines) a persistent domain from XML; returns its name. */
  defineDomain(xml: string): Promise<string>;
  undefineDomain(name: string, options?: { nvram?: boolean }): Promise<void>;
  start(name: string): Promise<void>;
  /** Hard power-off. */
  destroy(name: string): Promise<void>;
  /** ACPI shutdown request; returns at once. */
  shutdown(name: string): Promise<void>;
  domainState(name: string): Promise<DomainState>;
  listDomains(): Promise<{ name: string; state: DomainState }[]>;
  /**
   * The domain XML (inactive: the persistent definition, without the running state). securityInfo:
   * with what libvirt otherwise hides (a <graphics> passwd=), for checks that must see a secret to
   * report it; such XML is never logged or printed.
   */
  domainXml(name: string, options?: DomainXmlOptions): Promise<string>;
  domainExists(name: string): Promise<boolean>;
  /** Changes a device of the running domain only (update-device --live): the definition is kept. */
  updateDeviceLive(name: string, xml: string): Promise<void>;
  /** domifaddr: the guest agent's view, libvirt's DHCP leases, or the host's ARP table. */
  ifAddresses(name: string, source: AddressSource): Promise<DomainInterface[]>;

  /** Sends one raw QEMU guest agent command and returns its parsed "return" value. */
  agentCommand(name: string, command: string, args?: object, timeoutSeconds?: number): Promise<unknown>;
  /** True when the guest agent answers guest-ping. */
  agentPing(name: string): Promise<boolean>;
  /** Runs a program in the guest (guest-exec), waits for it and decodes its output. */
  agentExec(
    name: string,
    path: string,
    args?: readonly string[],
    options?: AgentExecOptions,
  ): Promise<AgentExecResult>;
  agentHostname(name: string): Promise<string>;

  poolDefine(xml: string): Promise<string>;
  poolBuild(name: string): Promise<void>;
  poolStart(name: string): Promise<void>;
  poolRefresh(name: string): Promise<void>;
  poolDestroy(name: string): Promise<void>;
  poolUndefine(name: string): Promise<void>;
  poolExists(name: string): Promise<boolean>;
  volList(pool: string): Promise<Volume[]>;
  volPath(pool: string, volume: string): Promise<string>;

  netDefine(xml: string): Promise<string>;
  netStart(name: string): Promise<void>;
  netDestroy(name: string): Promise<void>;
  netUndefine(name: string): Promise<void>;
  /** Whether libvirtd starts the network when it starts. */
  netAutostart(name: string, on: boolean): Promise<void>;
  netList(): Promise<NetworkInfo[]>;
  /** The network's definition (its bridge and the host's address on it). */
  netXml(name: string): Promise<string>;
  netDhcpLeases(network: string): Promise<DhcpLease[]>;

  /** The domain's disks, as the running (or defined) domain sees them. */
  domainDisks(name: string): Promise<DomainDisk[]>;
  /** Creates a snapshot from <domainsnapshot> XML: disk-only and atomic; quiesce asks the agent to freeze. */
  snapshotCreate(name: string, xml: string, options: { quiesce: boolean }): Promise<void>;
  snapshotNames(name: string): Promise<string[]>;
  snapshotXml(name: string, snapshot: string): Promise<string>;
  /** Deletes a snapshot; metadataOnly leaves its files and the disks as they are. */
  snapshotDelete(name: string, snapshot: string, options?: { metadataOnly?: boolean }): Promise<void>;
  /** Commits the active layer of a disk into its backing file and pivots to it (blockcommit --active --pivot). */
  blockCommitActive(name: string, disk: string): Promise<void>;
  /** Starts a push-mode backup job (backup-begin), with a checkpoint when checkpointXml is given. */
  backupBegin(name: string, backupXml: string, checkpointXml?: string): Promise<void>;
  /** The domain's job (domjobinfo, or --completed): its "Key: value" lines. */
  jobInfo(name: string, completed?: boolean): Promise<Record<string, string>>;
  checkpointNames(name: string): Promise<string[]>;
  checkpointDelete(name: string, checkpoint: string, options?: { metadataOnly?: boolean }): Promise<void>;
}

export { LibvirtError, type LibvirtErrorCode } from "./libvirt-error.js";
