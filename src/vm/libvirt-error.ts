// The one error type of the libvirt port, and the mapping from virsh's stderr to its codes.

export type LibvirtErrorCode =
  | "connect" // libvirtd not running, socket missing or refused
  | "no-domain"
  | "no-network"
  | "no-pool"
  | "no-volume"
  | "no-snapshot"
  | "no-checkpoint"
  | "exists"
  | "invalid-state" // e.g. starting a running domain, destroying a stopped one
  | "agent" // the guest agent is not connected or did not answer
  | "host-lacks" // the definition asks for something this host cannot give (vhost-net, hugepages)
  | "no-space" // a write on the host failed for lack of space
  | "timeout"
  | "other";

export class LibvirtError extends Error {
  override readonly name = "LibvirtError";
  constructor(
    readonly code: LibvirtErrorCode,
    message: string,
    readonly command: readonly string[] = [],
    readonly stderr = "",
    readonly exitCode: number | undefined = undefined,
  ) {
    super(message);
  }
}

// virsh prints libvirt's error messages (virerror.c) after "error: ". Connection failures come first:
// a dead libvirtd also makes every lookup fail.
const PATTERNS: [RegExp, LibvirtErrorCode][] = [
  [
    /failed to connect to the hypervisor|Failed to connect socket|Cannot recv data|End of file while reading/i,
    "connect",
  ],
  [/Domain not found|failed to get domain/i, "no-domain"],
  [/Network not found|failed to get network/i, "no-network"],
  [/Storage pool not found|failed to get pool/i, "no-pool"],
  [/Storage volume not found|failed to get vol/i, "no-volume"],
  [/Domain snapshot not found/i, "no-snapshot"],
  [/Domain checkpoint not found/i, "no-checkpoint"],
  [/already exists/i, "exists"],
  [
    /vhost-net was requested|hugetlbfs filesystem is not mounted|unable to map backing store for guest RAM|Could not open '\/dev\/vhost-net'|unsupported configuration/i,
    "host-lacks",
  ],
  [/No space left on device/i, "no-space"],
  [/guest agent|QEMU agent command/i, "agent"],
  [
    /Requested operation is not valid|is not running|is not active|already (running|active)/i,
    "invalid-state",
  ],
];

export function classifyVirshError(stderr: string): LibvirtErrorCode {
  for (const [pattern, code] of PATTERNS) if (pattern.test(stderr)) return code;
  return "other";
}

// libvirt files many host conditions (no hugetlbfs, qemu refusing to start) under its generic
// "internal error" category; printed as is, that reads as a kvmstrap bug. The category is dropped
// and the cause kept.
const CATEGORY = /^(internal error|unsupported configuration|operation failed): /i;

/**
 * virsh's failure in one line: what failed (its first "error: " line, e.g. "Failed to start domain
 * 'web'") and why (the last one), without the "error: " prefixes and libvirt's generic categories.
 */
export function virshErrorMessage(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const errors = lines.filter((l) => l.startsWith("error: ")).map((l) => l.replace(/^error: /, ""));
  const why = (errors.at(-1) ?? lines.at(-1) ?? "virsh failed without a message").replace(CATEGORY, "");
  const what = errors.length > 1 ? errors[0] : undefined;
  return what && !why.includes(what) ? `${what}: ${why}` : why;
}

/** What an operator can do about each kind of failure; undefined where the message says it all. */
export function libvirtRemedy(code: LibvirtErrorCode): string | undefined {
  switch (code) {
    case "connect":
      return "start libvirtd (systemctl start libvirtd) or pass --connect with the right URI";
    case "host-lacks":
      return "kvmstrap detect shows what this host has (/dev/vhost-net, free hugepages); ask for less, or load the module (modprobe vhost_net) or reserve hugepages first";
    case "no-space":
      return "free space on the filesystem named, or put the VMs elsewhere";
    case "agent":
      return "the guest needs qemu-guest-agent installed and running";
    default:
      return undefined;
  }
}
